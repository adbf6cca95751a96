"""Export stage: a SavedModel of the embedding network (the ArcFace head is not part of it).
TensorFlow code (allowed here).

`serving_default` takes `images` uint8 [batch, height, width, 1|3|4] of any size (grey tiled
to RGB, alpha dropped, resized in the graph) and returns `embeddings` float32 [batch, dim],
unit vectors (the mean with the mirrored image's when the run used eval.flip_average).
`metadata` (no inputs) returns the deployed `threshold` (same person when the Euclidean
distance is <= it), `image_size` and `embedding_dim`; export/faces.json says the same.
The export reloads the SavedModel and checks it against the Keras model.
"""

from __future__ import annotations

import numpy as np

from shared.export import export_saved_model, load_saved_model
from shared.io import atomic_write_json
from shared.serving import check_image_sizes, image_channels, nonempty_batch
from shared.task import Run
from tasks.faces import models
from tasks.faces.training import read_threshold

EXPORT_TOLERANCE = 1e-3  # on unit embeddings; float32 graphs agree to ~1e-6


def serving_module(raw, image_size: int, embedding_dim: int, threshold: float, flip_average: bool):
    import tensorflow as tf

    class Embedder(tf.Module):
        def __init__(self):
            super().__init__()
            self.raw = raw
            self.threshold = tf.constant(threshold, tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8, name="images")])
        def serve(self, images):
            return nonempty_batch(self.embed, images)

        @tf.function(input_signature=[])
        def metadata(self):
            return {"threshold": self.threshold, "image_size": tf.constant(image_size, tf.int32),
                    "embedding_dim": tf.constant(embedding_dim, tf.int32)}

        def embed(self, images):
            images = check_image_sizes(images)
            resized = tf.image.resize(image_channels(images, 3), (image_size, image_size), method="bilinear",
                                      antialias=True)
            # back to whole pixel values, as the CLI's images (8-bit) are: the LBP block compares pixels
            # with >=, and a resize to the same size is not exactly the identity
            resized = tf.clip_by_value(tf.round(resized), 0.0, 255.0)
            vectors = tf.cast(self.raw.serve(resized), tf.float32)
            if flip_average:
                vectors = vectors + tf.cast(self.raw.serve(tf.reverse(resized, axis=[2])), tf.float32)
                vectors = tf.math.l2_normalize(vectors, axis=-1)
            return {"embeddings": vectors}

    module = Embedder()
    module.signatures_to_save = {"serving_default": module.serve, "metadata": module.metadata}
    return module


def export(run: Run):
    config = run.config
    threshold = read_threshold(run)
    model = models.load_embedding_model(run.dir.require_model())
    size, dim = config.data.image_size, int(model.output.shape[-1])
    path = export_saved_model(model, run.dir.saved_model,
                              lambda raw: serving_module(raw, size, dim, threshold["threshold"],
                                                         config.eval.flip_average))
    info = {"threshold": threshold["threshold"], "threshold_chosen_on": threshold["chosen_on"],
            "distance": threshold["metric"], "image_size": size, "embedding_dim": dim,
            "flip_average": config.eval.flip_average}
    if path is None:
        atomic_write_json(run.dir.root / "export" / "faces.json", info)
        return None
    images = np.random.default_rng(0).integers(0, 256, (4, size, size, 3), np.uint8)
    loaded = load_saved_model(path)  # keep a reference: it owns the variables
    served = loaded.signatures["serving_default"](images=images)["embeddings"].numpy()
    expected = models.embed(model, images, flip_average=config.eval.flip_average)
    difference = float(np.max(np.abs(served - expected)))
    served_threshold = float(loaded.signatures["metadata"]()["threshold"].numpy())
    atomic_write_json(run.dir.root / "export" / "faces.json",
                      {**info, "saved_model": "saved_model", "check_max_abs_difference": difference})
    if difference > EXPORT_TOLERANCE or abs(served_threshold - threshold["threshold"]) > 1e-6:
        raise ValueError(f"The exported SavedModel at {path} disagrees with the Keras model: max |embedding "
                         f"difference| = {difference:.3g} (tolerance {EXPORT_TOLERANCE}), threshold "
                         f"{served_threshold} vs {threshold['threshold']}. This is a bug; please report it.")
    print(f"faces export: {path} (max |SavedModel - Keras| = {difference:.2e}, threshold "
          f"{threshold['threshold']:.4f} in its metadata signature)")
    return path
