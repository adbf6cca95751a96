"""Export: `.keras` always; a TF SavedModel with in-graph pre/post-processing when TF is there.

The SavedModel is built in two steps that work from every backend: `model.export()` writes
the bare model as a SavedModel (JAX goes through jax2tf), which is reloaded and wrapped in
a `tf.Module` whose serving function adds the task's pre/post-processing (resize, softmax,
NMS, beam search...) in TensorFlow. TF code lives only here and in the tasks' export
wrappers; without TF the SavedModel step is skipped with a clear message.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

from shared.io import atomic_dir, atomic_file, temporary_dir_beside
from shared.runtime import tensorflow_available

TF_MISSING = ("TensorFlow is not installed, so the SavedModel export was skipped (model.keras "
              "was written). Install tensorflow-cpu (pip install tensorflow-cpu) to export.")


def save_keras(model, path: str | Path) -> Path:
    """Saves the full model (architecture, weights, compile state) atomically."""
    path = Path(path)
    with atomic_file(path, suffix=".keras") as tmp:
        model.save(str(tmp))
    return path


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names it and says what to do."""


def check_keras_file(path: str | Path, retrain: str = "retrain") -> Path:
    """Checks that a `.keras` file is whole (its zip reads back) and that its weights are all
    finite, without Keras; ModelFileError naming the file and `retrain` (the command to run)
    otherwise. Keras alone says "File not found" for a truncated file and loads NaN weights."""
    import h5py
    import numpy as np

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            if damaged is not None:
                raise zipfile.BadZipFile(f"member {damaged} fails its CRC check")
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as err:
        raise ModelFileError(f"{path} is damaged (truncated or not a .keras model: {err}). "
                             f"Train again ({retrain}) or restore the file from a copy.") from None
    broken: list[str] = []

    def check(name, item):
        if isinstance(item, h5py.Dataset) and np.issubdtype(item.dtype, np.floating):
            if not np.isfinite(item[()]).all():
                broken.append(name)
        return None

    with h5py.File(io.BytesIO(weights), "r") as file:
        file.visititems(check)
    if broken:
        raise ModelFileError(
            f"{path} holds non-finite weights (NaN or inf, {len(broken)} arrays, e.g. "
            f"{broken[0]}): the training that wrote it diverged. Train again with a lower "
            f"learning rate ({retrain} --set train.learning_rate=...).")
    return path


def export_saved_model(model, export_dir: str | Path,
                       wrap: Callable[[object], object] | None = None,
                       input_signature=None) -> Path | None:
    """Writes `export_dir` atomically; `wrap(raw)` returns the tf.Module to save, where
    `raw.serve(x)` runs the bare model (`input_signature` for subclassed models). Returns
    None (after printing why) without TF."""
    if not tensorflow_available():
        print(TF_MISSING)
        return None
    import tensorflow as tf

    export_dir = Path(export_dir)
    # Scratch beside the target, not in /tmp: a killed export leaves nothing elsewhere, and
    # the next export removes what it left (shared.io.remove_stale_temporaries).
    with temporary_dir_beside(export_dir) as scratch:
        raw_dir = Path(scratch) / "raw"
        extra = {"input_signature": input_signature} if input_signature is not None else {}
        import keras

        if keras.backend.backend() == "jax":
            # Serving only: no gradient graph (jax2tf cannot differentiate a while loop with
            # a data-dependent stop, e.g. beam search, and nobody trains a SavedModel here).
            extra["jax2tf_kwargs"] = {"with_gradient": False}
        model.export(str(raw_dir), format="tf_saved_model", verbose=False, **extra)
        raw = tf.saved_model.load(str(raw_dir))
        module = wrap(raw) if wrap else raw
        with atomic_dir(export_dir) as tmp:
            signatures = getattr(module, "signatures_to_save", None)
            # Serving needs no gradients; jax2tf's custom gradients cannot be re-saved.
            options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
            tf.saved_model.save(module, str(tmp), signatures=signatures, options=options)
    return export_dir


def load_saved_model(export_dir: str | Path):
    if not tensorflow_available():
        raise ImportError(TF_MISSING)
    import tensorflow as tf

    return tf.saved_model.load(str(export_dir))
