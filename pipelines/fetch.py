"""Fetch, verify and describe the registry's datasets under a data root.

    fetch(get("olivetti"), root)      # downloads what is missing or wrong, checksummed
    verify(get("bccd"), root)         # {"checked": 735, "problems": [...]}
    status(get("bccd"), root)         # present or not, and what is missing

`KTS_DATA_MIRROR=URL` (or `mirror=`) fetches from URL/<folder>/<path> instead of upstream:
a folder laid out like a data root, served over HTTP (or a file:// URL).
Files that ship inside an installed package (word-eval, in gensim) are copied from it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from pipelines.download import Progress, download, extract_archive, partial_path, sha256_file
from pipelines.registry import Dataset, FileEntry
from shared.io import file_lock

MIRROR_ENV = "KTS_DATA_MIRROR"
PARALLEL_ABOVE = 16  # datasets with more files to fetch are fetched 8 at a time


@dataclasses.dataclass
class Status:
    dataset: Dataset
    folder: Path
    missing: list[str]  # paths absent or of the wrong size

    @property
    def present(self) -> bool:
        return not self.missing

    @property
    def partly(self) -> bool:
        return bool(self.missing) and len(self.missing) < len(self.dataset.files)


def installed(entry: FileEntry) -> Path | None:
    """The file inside an installed package (without importing it), if there."""
    if not entry.package_path:
        return None
    top, _, rest = entry.package_path.partition("/")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / rest
    return path if path.is_file() else None


def _target(dataset: Dataset, entry: FileEntry, root: Path) -> Path:
    return root / dataset.folder / (entry.unpack or entry.path)


def _in_place(dataset: Dataset, entry: FileEntry, root: Path, checksum: bool) -> bool:
    target = _target(dataset, entry, root)
    if entry.unpack:
        return target.is_dir()
    if not target.is_file() or target.stat().st_size != entry.size:
        return False
    return not checksum or sha256_file(target) == entry.sha256


def status(dataset: Dataset, root: str | os.PathLike) -> Status:
    """Which files are there (by size; `verify` reads them)."""
    root = Path(root)
    missing = [e.path for e in dataset.files if not _in_place(dataset, e, root, checksum=False)]
    return Status(dataset, root / dataset.folder, missing)


def verify(dataset: Dataset, root: str | os.PathLike) -> dict:
    """Checks size and sha256 of every file present: {"checked", "missing", "problems"}."""
    root = Path(root)
    problems, missing, checked = [], [], 0
    for entry in dataset.files:
        target = _target(dataset, entry, root)
        if entry.unpack:
            checked += target.is_dir()
            if not target.is_dir():
                missing.append(entry.unpack)
            continue
        if not target.is_file():
            missing.append(entry.path)
            continue
        checked += 1
        received = sha256_file(target)
        if received != entry.sha256:
            problems.append(f"{target}: expected sha256 {entry.sha256} ({entry.size:,} bytes), received "
                            f"{received} ({target.stat().st_size:,} bytes)")
    return {"checked": checked, "missing": missing, "problems": problems}


def _locked(root: Path):
    """One fetch at a time per data root (two would share the partial files)."""
    return file_lock(root / ".kts-fetch.lock")


def _url(dataset: Dataset, entry: FileEntry, mirror: str | None) -> str:
    if mirror:
        return f"{mirror.rstrip('/')}/{dataset.folder}/{entry.path}"
    package_file = installed(entry)
    return package_file.as_uri() if package_file else entry.url


def _fetch_one(dataset: Dataset, entry: FileEntry, root: Path, mirror: str | None, progress: bool | None,
               **download_options) -> Path:
    url = _url(dataset, entry, mirror)
    target = root / dataset.folder / entry.path
    by_hand = (f"download {url} yourself and save it as {target}, then check it with "
               f"`kts data verify {dataset.name}`")
    if not entry.unpack:
        return download(url, target, entry.size, entry.sha256, progress=progress, by_hand=by_hand,
                        **download_options)
    archive = target.parent / f".{target.name}.archive"  # hidden: the archive is not kept
    try:
        download(url, archive, entry.size, entry.sha256, progress=progress, by_hand=by_hand, **download_options)
        return extract_archive(archive, root / dataset.folder / entry.unpack)
    finally:
        archive.unlink(missing_ok=True)


def fetch(dataset: Dataset, root: str | os.PathLike, *, mirror: str | None = None, progress: bool | None = None,
          log: Callable[[str], None] = print, **download_options) -> list[Path]:
    """Downloads every file of `dataset` that is absent or wrong under `root`; returns the
    paths written. Raises DownloadError / ChecksumError (pipelines.download) on the first
    file that fails (files already fetched stay: they are complete and checked)."""
    root = Path(root)
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    todo = [e for e in dataset.files if not _in_place(dataset, e, root, checksum=True)]
    if not todo:
        log(f"{dataset.name}: present at {root / dataset.folder} ({len(dataset.files)} files checked)")
        return []
    total = sum(e.size for e in todo)
    log(f"{dataset.name}: fetching {len(todo)} file(s), {total / 1e6:.1f} MB, into {root / dataset.folder}")
    with _locked(root):
        if len(todo) <= PARALLEL_ABOVE:
            return [_fetch_one(dataset, e, root, mirror, progress, **download_options) for e in todo]
        # The first file alone (no network: one failure, not hundreds), then 8 at a time; the
        # first error cancels the files not yet started.
        written = [_fetch_one(dataset, todo[0], root, mirror, progress, **download_options)]
        bar = Progress(f"{dataset.name} ({len(todo)} files)", total, todo[0].size, progress)
        try:
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                futures = {pool.submit(_fetch_one, dataset, e, root, mirror, False, **download_options): e
                           for e in todo[1:]}
                for future in concurrent.futures.as_completed(futures):
                    if future.exception() is not None:
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise future.exception()
                    written.append(future.result())
                    bar.update(futures[future].size)
        finally:
            bar.close()
        return written


def leftovers(dataset: Dataset, root: str | os.PathLike) -> list[Path]:
    """Partial downloads left by an interrupted fetch (resumed by the next one)."""
    root = Path(root)
    return [p for e in dataset.files if (p := partial_path(root / dataset.folder / e.path)).exists()]
