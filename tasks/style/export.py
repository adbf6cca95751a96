"""Export stage: a SavedModel whose `stylize` signature takes one uint8 RGB image of any size
[height, width, 3] and returns the stylized uint8 image of the same size; checked after
reloading against the Keras model. TensorFlow code (allowed here)."""

from __future__ import annotations

import numpy as np

from shared.export import export_saved_model
from shared.io import atomic_write_json
from shared.task import Run
from tasks.style.training import load_network, training_info


def export(run: Run):
    network = load_network(run)
    import tensorflow as tf

    def wrap(raw):
        class Stylize(tf.Module):
            def __init__(self):
                super().__init__()
                self.raw = raw

            @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
            def stylize(self, image):
                pixels = tf.cast(image, tf.float32)[tf.newaxis]
                stylized = self.raw.serve(pixels)
                return {"image": tf.cast(tf.clip_by_value(tf.round(stylized[0]), 0.0, 255.0), tf.uint8)}

        module = Stylize()
        module.signatures_to_save = {"serving_default": module.stylize, "stylize": module.stylize}
        return module

    root = run.dir.saved_model.parent
    if export_saved_model(network, run.dir.saved_model, wrap) is None:
        return None
    loaded = tf.saved_model.load(str(run.dir.saved_model))
    rng = np.random.default_rng(0)
    probe = rng.integers(0, 256, (37, 29, 3), dtype=np.uint8)  # odd sizes
    served = loaded.signatures["stylize"](image=tf.constant(probe))["image"].numpy()
    expected = np.clip(np.round(np.asarray(network.predict_on_batch(probe[None].astype(np.float32)))[0]), 0, 255)
    difference = int(np.max(np.abs(served.astype(np.int32) - expected.astype(np.int32))))
    if served.shape != probe.shape or difference > 1:
        raise ValueError(f"The exported stylizer at {run.dir.saved_model} disagrees with model.keras "
                         f"(shape {served.shape} for {probe.shape}, difference {difference}). This is a bug.")
    info = {"saved_model": "saved_model", "signature": "stylize",
            "input": "image: uint8 [height, width, 3] RGB, any size",
            "output": "image: uint8 [height, width, 3], the same size",
            "features": training_info(run).get("features", "unknown"),
            "check": {"probe": list(probe.shape), "max_difference_levels": difference}}
    atomic_write_json(root / "export.json", info)
    print(f"style export: {run.dir.saved_model} (signature stylize, uint8 any size; {info['features']})")
    return root
