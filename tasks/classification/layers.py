"""Custom layers of the classifier, registered so `keras.models.load_model` finds them."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="kts")
class TrainingOnly(keras.layers.Layer):
    """Applies the wrapped (random augmentation) layer only when `training=True`.

    Keras' random image layers default to `training=True`, so a plain `model(x)`, and the
    graph `model.export()` traces, would augment at inference. This wrapper makes
    "not explicitly training" mean identity.
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape):
        self.layer.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        if training:
            return self.layer(inputs, training=True)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


def load_model(path, compile: bool = True) -> keras.Model:
    """`keras.models.load_model` with this task's custom layers registered (by this import);
    `compile=False` skips the optimizer and metrics (inference only: faster to load)."""
    return keras.models.load_model(path, compile=compile)
