"""TensorFlow Datasets splits as random-access sources, read from a prepared `data_dir`.

Nothing is downloaded: the dataset must already be prepared in `data_dir`, e.g. with
`tfds build <name> --data_dir=<data_dir> --file_format=array_record` on a machine with
network access. Splits stored as array_record are read lazily through
`builder.as_data_source`; splits stored as TFRecord (no random access) are read once into
memory as an ArraySource. TensorFlow / TFDS are imported only when this loader is called.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from pipelines.sources import ArraySource, Element, LabelledSource


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "load_tfds needs tensorflow-datasets (and tensorflow); install them with "
            f"`pip install tensorflow-datasets tensorflow-cpu`. Import failed with: {error}"
        ) from error
    return tfds


def _image(value) -> np.ndarray:
    image = np.asarray(value, dtype=np.uint8)
    return image[..., None] if image.ndim == 2 else image


class TfdsSource(LabelledSource):
    """Wraps a `tfds.data_source` (random access) into our element dicts.

    `labels` are read once at construction (one pass over the records).
    """

    def __init__(
        self,
        data_source,
        class_names: Sequence[str],
        image_key: str,
        label_key: str,
        indices: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ):
        self.data_source = data_source
        self.image_key, self.label_key = image_key, label_key
        self.indices = np.arange(len(data_source)) if indices is None else np.asarray(indices)
        if labels is None:
            labels = np.array([data_source[int(i)][label_key] for i in self.indices], np.int64)
        super().__init__(labels, len(self.indices), class_names, None)

    def __getitem__(self, index: int) -> Element:
        index = self._check_index(index)
        record = self.data_source[int(self.indices[index])]
        return {
            "image": _image(record[self.image_key]),
            "label": np.int32(self.labels[index]),
            "weight": np.float32(1.0),
        }

    def subset(self, indices: Sequence[int] | np.ndarray, skipped: list[dict] | None = None):
        """The samples at `indices` (no re-reading of labels)."""
        indices = np.asarray(indices, dtype=np.int64)
        source = TfdsSource(
            self.data_source,
            self.class_names,
            self.image_key,
            self.label_key,
            self.indices[indices],
            self.labels[indices],
        )
        source.skipped = list(skipped or [])
        return source


def load_tfds(
    name: str,
    data_dir: str | os.PathLike,
    splits: Sequence[str] = ("train", "test"),
    image_key: str = "image",
    label_key: str = "label",
) -> dict[str, ArraySource | TfdsSource]:
    """Returns one source per requested split of the prepared TFDS dataset `name`.

    Raises FileNotFoundError if the dataset is not prepared in `data_dir`, ValueError for
    an unknown dataset, split or feature name, ImportError if TFDS is not installed.
    """
    tfds = _import_tfds()
    try:
        builder = tfds.builder(name, data_dir=os.fspath(data_dir))
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"TFDS has no dataset named {name!r}; see `tfds.list_builders()`."
        ) from None
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in data_dir={os.fspath(data_dir)!r} "
            f"(looked in {builder.data_dir}). Prepare it on a machine with network access: "
            f"`tfds build {name} --data_dir=<data_dir> --file_format=array_record`, then copy "
            "the folder here."
        )
    features = builder.info.features
    for key in (image_key, label_key):
        if key not in features:
            raise ValueError(
                f"TFDS {name!r} has no feature {key!r}; its features are {list(features)}."
            )
    label_feature = features[label_key]
    class_names = list(getattr(label_feature, "names", None) or [])
    if not class_names:
        class_names = [str(i) for i in range(int(label_feature.num_classes))]
    available = list(builder.info.splits)
    result: dict[str, ArraySource | TfdsSource] = {}
    for split in splits:
        if split not in available:
            raise ValueError(
                f"TFDS {name!r} has no split {split!r}; available splits: {available}."
            )
        try:
            data_source = builder.as_data_source(split)
        except NotImplementedError:  # TFRecord files: no random access, read into memory.
            rows = list(tfds.as_numpy(builder.as_dataset(split)))
            images = np.stack([_image(row[image_key]) for row in rows])
            labels = np.array([row[label_key] for row in rows], np.int64)
            result[split] = ArraySource(images, labels, class_names)
        else:
            result[split] = TfdsSource(data_source, class_names, image_key, label_key)
    return result
