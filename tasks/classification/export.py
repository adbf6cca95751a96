"""Export stage: a SavedModel that takes uint8 images of any size and returns probabilities
and class names, with resizing and softmax inside the graph. TensorFlow code (allowed here).

`serving_default` takes `images` uint8 [batch, height, width, 1|3|4]: grey, RGB or RGBA,
whatever the model was trained on (converted in the graph: grey -> RGB by tiling, RGB -> grey
by luma, alpha dropped; other channel counts are refused with a message). A batch of 0
returns empty outputs."""

from __future__ import annotations

import keras
import numpy as np

from shared.export import export_saved_model, load_saved_model
from shared.io import atomic_write_json
from shared.serving import check_image_sizes, image_channels, nonempty_batch
from shared.task import Run
from tasks.classification.layers import load_model

EXPORT_TOLERANCE = 1e-3  # probabilities; float32 graphs agree to ~1e-6


def serving_module(raw, image_size: int, channels: int, class_names: list[str]):
    import tensorflow as tf

    class Classifier(tf.Module):
        def __init__(self):
            super().__init__()
            self.raw = raw
            self.class_names = tf.constant(class_names)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8,
                                                    name="images")])
        def serve(self, images):
            return nonempty_batch(self.classify, images)

        def classify(self, images):
            images = check_image_sizes(images)
            resized = tf.image.resize(image_channels(images, channels), (image_size, image_size),
                                      method="bilinear", antialias=True)
            logits = tf.cast(self.raw.serve(resized), tf.float32)
            probabilities = tf.nn.softmax(logits, axis=-1)
            class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            return {"probabilities": probabilities, "class_ids": class_ids,
                    "scores": tf.reduce_max(probabilities, axis=-1),
                    "class_names": tf.gather(self.class_names, class_ids)}

    module = Classifier()
    module.signatures_to_save = {"serving_default": module.serve}
    return module


def export(run: Run):
    config = run.config
    model = load_model(run.dir.require_model())
    results_path = run.dir.evaluation / "results.json"
    class_names = _class_names(run, results_path)
    size = config.data.image_size
    channels = int(model.inputs[0].shape[-1])
    path = export_saved_model(model, run.dir.saved_model,
                              lambda raw: serving_module(raw, size, channels, class_names))
    if path is None:
        return None
    # Check: the reloaded SavedModel must agree with the Keras model on the same pixels.
    images = np.random.default_rng(0).integers(0, 256, (4, size, size, channels), np.uint8)
    loaded = load_saved_model(path)  # keep a reference: it owns the variables
    served = loaded.signatures["serving_default"](images=images)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(
        model.predict_on_batch(images.astype(np.float32)), axis=-1))
    difference = float(np.max(np.abs(served["probabilities"].numpy() - expected)))
    atomic_write_json(run.dir.root / "export" / "export_check.json",
                      {"max_abs_difference": difference, "images": 4, "class_names": class_names})
    if difference > EXPORT_TOLERANCE:
        raise ValueError(f"The exported SavedModel at {path} disagrees with the Keras model: "
                         f"max |probability difference| = {difference:.3g} > {EXPORT_TOLERANCE}. "
                         "This is a bug; please report it with the run's config.json.")
    print(f"classification export: {path} (max |SavedModel - Keras| = {difference:.2e})")
    return path


def _class_names(run: Run, results_path) -> list[str]:
    import json

    if results_path.exists():
        return json.loads(results_path.read_text())["class_names"]
    from tasks.classification.data import load_splits

    return load_splits(run.config, run.data_root).class_names
