"""Dataset registry: what each dataset is, where it comes from, and its files' checksums."""

from pipelines.registry.datasets import ENTRIES, Dataset, FileEntry, Origin, datasets, fetch_hint, for_data_source, get

__all__ = ["ENTRIES", "Dataset", "FileEntry", "Origin", "datasets", "fetch_hint", "for_data_source", "get"]
