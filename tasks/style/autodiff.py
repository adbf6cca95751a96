"""The one backend-specific piece of the Gatys optimisation: a compiled value-and-gradient
function of a keras.ops loss with respect to its first argument (the image). Everything
else (the losses, the Adam update) is keras.ops. JAX: `jax.jit(jax.value_and_grad)`;
TensorFlow: a `tf.function` around a `GradientTape`. Either is traced once per input shape
(once per scale), never per iteration."""

from __future__ import annotations

from collections.abc import Callable


def value_and_grad(fn: Callable) -> Callable:
    """fn(x, *args) -> (loss, aux) becomes g(x, *args) -> ((loss, aux), dloss/dx)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.value_and_grad(fn, has_aux=True)
    if backend == "tensorflow":
        import tensorflow as tf

        def wrapped(x, *args):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss, aux = fn(x, *args)
            return (loss, aux), tape.gradient(loss, x)

        return wrapped
    raise NotImplementedError(f"Style transfer's optimisation runs on the tensorflow and jax backends. "
                              f"Received: KERAS_BACKEND={backend}")


def compile_function(fn: Callable) -> Callable:
    """Compiles `fn` (traced once per input shape): jax.jit or tf.function."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    import tensorflow as tf

    return tf.function(fn, reduce_retracing=True)
