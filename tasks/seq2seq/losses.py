"""Masked sequence loss (label-smoothed cross-entropy) and token accuracy; `keras.ops` only.

Padding positions (`target_out == pad_id`) count for nothing; the loss is the mean over the
batch's real target tokens, so long and short batches weigh each token alike.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable("kts_seq2seq")
class SmoothedSequenceLoss(keras.losses.Loss):
    """Cross-entropy against (1 - eps) one-hot + eps uniform over the vocabulary, masked.

    `y_true` (B, T) int ids, `y_pred` (B, T, V) logits. Returns the mean over non-pad tokens.
    With eps = 0 it is the plain token-level negative log-likelihood.
    """

    def __init__(self, label_smoothing: float = 0.0, pad_id: int = 0, name="sequence_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1). Received: {label_smoothing}")
        self.label_smoothing, self.pad_id = label_smoothing, pad_id

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        nll = -ops.take_along_axis(log_probs, y_true[..., None], axis=-1)[..., 0]
        smooth = -ops.mean(log_probs, axis=-1)
        per_token = (1.0 - self.label_smoothing) * nll + self.label_smoothing * smooth
        mask = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        return ops.sum(per_token * mask) / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "pad_id": self.pad_id}


@keras.saving.register_keras_serializable("kts_seq2seq")
class TokenAccuracy(keras.metrics.Metric):
    """Share of non-pad target tokens whose argmax prediction is right (teacher-forced)."""

    def __init__(self, pad_id: int = 0, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_id = pad_id
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        right = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32")
        self.correct.assign_add(ops.sum(right * mask))
        self.total.assign_add(ops.sum(mask))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}
