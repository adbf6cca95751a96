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
    predictions, then:
      class = sum BCE-with-logits(logits, target_scores) / max(sum target_scores, 1)
      box   = sum (1 - CIoU) * w / max(sum w, 1)
      dfl   = sum DFL * w / max(sum w, 1)
      w     = max(sum_c target_scores, box_weight_floor) on foreground anchors, 0 elsewhere
    with boxes in stride units for CIoU/DFL. `parts` holds the weighted "box", "class", "dfl"
    terms (they add up to `total`) and "num_foreground".

    `box_weight_floor` (default 1.0: every assigned anchor's box is regressed with weight 1).
    YOLOv8 (`box_weight_floor=0`, which reproduces it exactly) weights the box and DFL terms
    by the task-aligned target score, which is normalised to the best IoU the network
    currently achieves for that object. For an object whose predicted boxes start far off,
    as small ones do (at initialisation the DFL expectation is ~7.5 stride units per side,
    a ~120 px box at stride 8, so a 15 px BCCD platelet starts at IoU ~0.02), that weight is
    ~1e-3: its anchors are assigned but never regressed, their IoU stays tiny, and so do
    their class targets; a fixed point at ~0 loss and 0 AP for that class. The assignment
    (which anchors are positive, and the IoU-aware class targets) is the assigner's job; once
    an anchor is positive, its box should be pulled to the object whatever its current IoU,
    as FCOS/ATSS do (one weight per positive). The floor does that; between 0 and 1 it keeps
    YOLOv8's emphasis on well-aligned anchors while bounding it below.

    Batch reduction: the sums run over the whole batch and are divided by the batch's target
    score sum (class) or box weight sum (box, DFL; the same sum when the floor is 0), i.e. an
    average per (soft) positive anchor, independent of the batch size.
    YOLOv8 multiplies this by the batch size (to suit its SGD recipe with a nominal batch of
    64); we do not by default, so Keras learning rates mean the same at any batch size. Set
    `scale_by_batch_size=True` to reproduce YOLOv8's scale exactly.
    """

    def __init__(self, num_classes: int, reg_max: int = 16, box_weight: float = 7.5, class_weight: float = 0.5,
                 dfl_weight: float = 1.5, image_size: int = 640, strides=DEFAULT_STRIDES,
                 assigner: TaskAlignedAssigner | None = None, scale_by_batch_size: bool = False,
                 box_weight_floor: float = 1.0):
        if not 0.0 <= box_weight_floor <= 1.0:
            raise ValueError(f"box_weight_floor must be in [0, 1]. Received: "
                             f"box_weight_floor={box_weight_floor}")
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.box_weight = box_weight
        self.class_weight = class_weight
        self.dfl_weight = dfl_weight
        self.image_size = image_size
        self.strides = tuple(strides)
        self.assigner = assigner or TaskAlignedAssigner(num_classes)
        self.scale_by_batch_size = scale_by_batch_size
        self.box_weight_floor = box_weight_floor
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

        weight = ops.maximum(ops.sum(target_scores, axis=-1), self.box_weight_floor) * foreground  # (B, A)
        weight_sum = ops.maximum(ops.sum(weight), 1.0)
        box_loss = ops.sum((1.0 - ciou(pred_boxes, target_boxes)) * weight) / weight_sum

        dfl = self._dfl(distribution_logits, boxes_to_dist(target_boxes, anchors_grid, self.reg_max))
        dfl_loss = ops.sum(dfl * weight) / weight_sum

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
