"""Export stage: a SavedModel with letterboxing, the network, decoding and NMS inside.

Input: uint8 images [batch, height, width, 3] of any size (one size per call); grey (1
channel) and RGBA (4) are converted to RGB in the graph, other channel counts refused with a
message. Outputs: boxes [batch, K, 4] (x_min, y_min, x_max, y_max in input pixels), scores,
classes, class_names, num_detections; a batch of 0 returns them with 0 rows. TensorFlow code
(allowed here)."""

from __future__ import annotations

import json

import numpy as np

from shared.export import export_saved_model, load_saved_model
from shared.io import atomic_write_json
from shared.serving import check_image_sizes, image_channels, nonempty_batch
from shared.task import Run
from tasks.detection.detector import DetectorWithNMS
from tasks.detection.training import load

EXPORT_TOLERANCE = 1e-2  # pixels / scores; float32 graphs agree to ~1e-4


def serving_module(raw, image_size: int, class_names: list[str], fill: float = 114.0):
    import tensorflow as tf

    class Detector(tf.Module):
        def __init__(self):
            super().__init__()
            self.raw = raw
            self.class_names = tf.constant(class_names)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8,
                                                    name="images")])
        def serve(self, images):
            return nonempty_batch(self.detect, images)

        def detect(self, images):
            images = check_image_sizes(images)
            height = tf.cast(tf.shape(images)[1], tf.float32)
            width = tf.cast(tf.shape(images)[2], tf.float32)
            scale = image_size / tf.maximum(height, width)
            new_height = tf.clip_by_value(tf.round(height * scale), 1, image_size)
            new_width = tf.clip_by_value(tf.round(width * scale), 1, image_size)
            pad_y = tf.math.floordiv(image_size - new_height, 2.0)
            pad_x = tf.math.floordiv(image_size - new_width, 2.0)
            resized = tf.image.resize(image_channels(images, 3),
                                      tf.cast(tf.stack([new_height, new_width]), tf.int32),
                                      method="bilinear", antialias=True)
            resized = tf.round(tf.clip_by_value(resized, 0.0, 255.0))
            padded = tf.pad(resized - fill, [[0, 0], [pad_y, image_size - new_height - pad_y],
                                             [pad_x, image_size - new_width - pad_x], [0, 0]]
                            ) + fill
            padded = tf.ensure_shape(padded, [None, image_size, image_size, 3])
            out = self.raw.serve(padded)
            offset = tf.stack([pad_x, pad_y, pad_x, pad_y])
            boxes = (tf.cast(out["boxes"], tf.float32) - offset) / scale
            boxes = tf.clip_by_value(boxes, 0.0, tf.stack([width, height, width, height]))
            classes = tf.cast(out["classes"], tf.int32)
            names = tf.where(classes >= 0, tf.gather(self.class_names, tf.maximum(classes, 0)),
                             tf.constant(""))
            return {"boxes": boxes, "scores": tf.cast(out["scores"], tf.float32),
                    "classes": classes, "class_names": names,
                    "num_detections": tf.cast(out["num_detections"], tf.int32)}

    module = Detector()
    module.signatures_to_save = {"serving_default": module.serve}
    return module


def detection_difference(first: dict, second: dict) -> float:
    """How far two sets of NMS outputs are apart, ignoring the order of near-tied scores:
    the largest gap between the sorted scores, and between each box of `second` and the
    nearest box of the same class in `first`."""
    worst = 0.0
    for row in range(len(second["num_detections"])):
        count = int(second["num_detections"][row])
        if count != int(first["num_detections"][row]):
            return float("inf")
        worst = max(worst, float(np.max(np.abs(np.sort(first["scores"][row, :count])
                                               - np.sort(second["scores"][row, :count])),
                                        initial=0.0)))
        for box, cls in zip(second["boxes"][row, :count], second["classes"][row, :count]):
            same = first["boxes"][row, :count][first["classes"][row, :count] == cls]
            if not len(same):
                return float("inf")
            worst = max(worst, float(np.min(np.max(np.abs(same - box), axis=-1))))
    return worst


def export(run: Run):
    import tensorflow as tf  # noqa: F401 - export needs TF; export_saved_model says so

    config = run.config
    detector = load(run.dir.require_model())
    size = config.data.image_size
    class_names = json.loads(run.dir.training_json.read_text())["class_names"]
    inference = DetectorWithNMS(detector)
    inference(np.zeros((1, size, size, 3), np.float32))  # build before export
    path = export_saved_model(
        inference, run.dir.saved_model,
        lambda raw: serving_module(raw, size, class_names),
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    if path is None:
        return None
    # Check: images already at the network size pass the letterbox unchanged, so the
    # SavedModel must reproduce the Keras model's final detections.
    images = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), np.uint8)
    loaded = load_saved_model(path)  # keep a reference: it owns the variables
    served = loaded.signatures["serving_default"](images=images)
    expected = inference(images.astype(np.float32))
    difference = detection_difference({k: np.asarray(v) for k, v in served.items()},
                                      {k: np.asarray(v) for k, v in expected.items()})
    atomic_write_json(run.dir.root / "export" / "export_check.json",
                      {"max_abs_difference": difference, "images": 2, "class_names": class_names})
    if difference > EXPORT_TOLERANCE:
        raise ValueError(f"The exported SavedModel at {path} disagrees with the Keras model "
                         f"by {difference:.3g} > {EXPORT_TOLERANCE}. This is a bug.")
    print(f"detection export: {path} (max |SavedModel - Keras| = {difference:.2e})")
    return path
