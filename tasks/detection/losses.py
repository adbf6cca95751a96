"""YOLOv8 detection loss (class BCE + CIoU + distribution focal loss), `keras.ops` only."""

from __future__ import annotations

from keras import ops

from tasks.detection.assigner import TaskAlignedAssigner
from tasks.detection.box_ops import (
    DEFAULT_STRIDES,
    boxes_to_dist,
    ciou,
    dfl_expectation,
    dist_to_boxes,
    make_anchors,
    split_bins,
)


class YoloLoss:
    """`loss(gt_boxes (B, M, 4), gt_classes (B, M), raw (B, A, 4 * reg_max + C)) -> (total, parts)`.

    Decodes the raw head output, assigns targets with `TaskAlignedAssigner` on detached
    predictions, then (as YOLOv8):
      class = sum BCE-with-logits(logits, target_scores) / max(sum target_scores, 1)
      box   = sum (1 - CIoU) * w / max(sum target_scores, 1),  w = sum_c target_scores on foreground
      dfl   = sum DFL * w / max(sum target_scores, 1)
    with boxes in stride units for CIoU/DFL. `parts` holds the weighted "box", "class", "dfl"
    terms (they add up to `total`) and "num_foreground".

    Batch reduction: the sums run over the whole batch and are divided by the batch's target
    score sum, i.e. an average per (soft) positive anchor, independent of the batch size.
    YOLOv8 multiplies this by the batch size (to suit its SGD recipe with a nominal batch of
    64); we do not by default, so Keras learning rates mean the same at any batch size. Set
    `scale_by_batch_size=True` to reproduce YOLOv8's scale exactly.
    """

    def __init__(self, num_classes: int, reg_max: int = 16, box_weight: float = 7.5, class_weight: float = 0.5,
                 dfl_weight: float = 1.5, image_size: int = 640, strides=DEFAULT_STRIDES,
                 assigner: TaskAlignedAssigner | None = None, scale_by_batch_size: bool = False):
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.box_weight = box_weight
        self.class_weight = class_weight
        self.dfl_weight = dfl_weight
        self.image_size = image_size
        self.strides = tuple(strides)
        self.assigner = assigner or TaskAlignedAssigner(num_classes)
        self.scale_by_batch_size = scale_by_batch_size
        self.anchor_points, self.stride_tensor = make_anchors(image_size, self.strides)

    def __call__(self, gt_boxes, gt_classes, raw):
        channels = 4 * self.reg_max + self.num_classes
        if raw.shape[-1] != channels or raw.shape[-2] != self.anchor_points.shape[0]:
            raise ValueError(f"raw predictions must be (B, {self.anchor_points.shape[0]}, {channels}) for "
                             f"image_size={self.image_size}. Received: shape={tuple(raw.shape)}")
        raw = ops.cast(raw, "float32")
        distribution_logits = raw[..., : 4 * self.reg_max]  # (B, A, 4 * reg_max)
        class_logits = raw[..., 4 * self.reg_max:]  # (B, A, C)
        anchors_grid = self.anchor_points / self.stride_tensor  # (A, 2) stride units
        pred_boxes = dist_to_boxes(dfl_expectation(distribution_logits, self.reg_max), anchors_grid)

        target_boxes, target_scores, foreground = self.assigner(
            ops.stop_gradient(ops.sigmoid(class_logits)),
            ops.stop_gradient(pred_boxes * self.stride_tensor),
            self.anchor_points,
            gt_classes,
            ops.cast(gt_boxes, "float32"),
        )
        target_scores = ops.stop_gradient(target_scores)
        target_boxes = ops.stop_gradient(target_boxes / self.stride_tensor)
        foreground = ops.cast(foreground, "float32")
        target_score_sum = ops.maximum(ops.sum(target_scores), 1.0)

        class_loss = ops.sum(_bce_with_logits(class_logits, target_scores)) / target_score_sum

        weight = ops.sum(target_scores, axis=-1) * foreground  # (B, A)
        box_loss = ops.sum((1.0 - ciou(pred_boxes, target_boxes)) * weight) / target_score_sum

        dfl = self._dfl(distribution_logits, boxes_to_dist(target_boxes, anchors_grid, self.reg_max))
        dfl_loss = ops.sum(dfl * weight) / target_score_sum

        parts = {"box": self.box_weight * box_loss, "class": self.class_weight * class_loss,
                 "dfl": self.dfl_weight * dfl_loss}
        if self.scale_by_batch_size:
            batch_size = ops.cast(ops.shape(raw)[0], "float32")
            parts = {name: value * batch_size for name, value in parts.items()}
        total = parts["box"] + parts["class"] + parts["dfl"]
        parts["num_foreground"] = ops.sum(foreground)
        return total, parts

    def _dfl(self, distribution_logits, target_distances):
        """Cross-entropy to the two bins around each target distance, linearly weighted: (B, A)."""
        log_probabilities = ops.log_softmax(split_bins(distribution_logits, self.reg_max), axis=-1)
        left = ops.floor(target_distances)
        left_weight = left + 1.0 - target_distances
        bins_left = ops.one_hot(ops.cast(left, "int32"), self.reg_max)
        bins_right = ops.one_hot(ops.cast(left, "int32") + 1, self.reg_max)
        target = bins_left * left_weight[..., None] + bins_right * (1.0 - left_weight)[..., None]
        return ops.mean(-ops.sum(target * log_probabilities, axis=-1), axis=-1)


def _bce_with_logits(logits, targets):
    """Numerically stable elementwise binary cross-entropy on logits."""
    return ops.maximum(logits, 0.0) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))
