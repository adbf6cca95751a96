"""TensorFlow graph pieces shared by the tasks' SavedModel signatures (export code: the only
place besides the TFDS adapter where TF is used). Each guards one edge of what a served
model may be given, inside the graph:

- `image_channels`: 1 (grey), 3 (RGB) or 4 (RGBA) channel uint8 images converted to the
  model's channels (grey -> RGB by tiling; RGB -> grey by ITU-R 601 luma, the weights PIL's
  convert("L") and the training pipeline use; alpha dropped); any other count is refused.
- `check_image_sizes`: images with no rows or columns are refused.
- `nonempty_batch`: a batch of 0 runs the whole signature on one dummy row and returns its
  outputs cut to 0 rows, so an empty request gets empty outputs of the right shapes and
  dtypes (the networks' graphs themselves fail on a batch of 0).

Refusals are `tf.debugging` assertions, which raise InvalidArgumentError carrying the
message; the ops after them depend on them (control dependencies), so a refusal comes before
any shape error of the ops it guards, whichever backend traced the model.
"""

from __future__ import annotations

LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def image_channels(images, channels: int):
    """float32 [B, H, W, channels] from uint8 images with 1, 3 or 4 channels."""
    import tensorflow as tf

    count = tf.shape(images)[-1]
    valid = tf.debugging.Assert(
        tf.reduce_any(tf.stack([count == 1, count == 3, count == 4])),
        [f"images must have 1 (grey), 3 (RGB) or 4 (RGBA) channels (this model takes "
         f"{channels} and converts the others); received channels:", count])
    with tf.control_dependencies([valid]):  # checked before any op that assumes the count
        pixels = tf.cast(images, tf.float32)
    rgb = tf.cond(count == 1, lambda: tf.tile(pixels[..., :1], [1, 1, 1, 3]),
                  lambda: pixels[..., :3])
    rgb = tf.ensure_shape(rgb, [None, None, None, 3])
    if channels == 3:
        return rgb
    grey = tf.cond(count == 1, lambda: pixels[..., :1],
                   lambda: tf.round(tf.reduce_sum(rgb * tf.constant(LUMA_WEIGHTS), axis=-1,
                                                  keepdims=True)))
    return tf.ensure_shape(grey, [None, None, None, 1])


def check_image_sizes(images):
    """`images`, after a check that they have rows and columns (use the returned tensor, so
    the check runs before the ops that read it)."""
    import tensorflow as tf

    valid = tf.debugging.assert_positive(
        tf.shape(images)[1:3],
        message="images must have at least one row and one column ([batch, height, width, "
                "channels] with height, width >= 1)")
    with tf.control_dependencies([valid]):
        return tf.identity(images)


def nonempty_batch(run, inputs, fill=0):
    """`run(inputs)` for a batched tensor, also for a batch of 0: then `run` sees one row
    filled with `fill` (every other axis at least 1 long) and its outputs (a structure of
    tensors with a leading batch axis) are cut back to 0 rows."""
    import tensorflow as tf

    count = tf.shape(inputs)[0]
    dummy_shape = tf.concat([[1], tf.maximum(tf.shape(inputs)[1:], 1)], axis=0)
    safe = tf.cond(count > 0, lambda: inputs,
                   lambda: tf.fill(dummy_shape, tf.cast(fill, inputs.dtype)))
    outputs = run(tf.ensure_shape(safe, inputs.shape))
    return tf.nest.map_structure(lambda tensor: tensor[:count], outputs)
