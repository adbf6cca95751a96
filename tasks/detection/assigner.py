"""Task-aligned label assignment (TOOD, as used by YOLOv8), static shapes, `keras.ops` only."""

from __future__ import annotations

from keras import ops

from tasks.detection.box_ops import box_iou


class TaskAlignedAssigner:
    """Assigns ground-truth boxes to anchors by the alignment metric t = s^alpha * IoU^beta.

    For each gt: candidates are anchors whose centre lies strictly inside the box; the top-k
    candidates by t become positives. An anchor positive for several gts keeps the gt with the
    highest IoU. Target scores are one_hot(class) * t / max_t(gt) * max_IoU(gt). Padded gts
    (class -1) never assign.

    Call with `pred_scores` (B, A, C) probabilities, `pred_boxes` (B, A, 4) pixels,
    `anchor_points` (A, 2), `gt_classes` (B, M) int, `gt_boxes` (B, M, 4); returns
    `target_boxes` (B, A, 4) (zeros on background), `target_scores` (B, A, C) and
    `foreground_mask` (B, A) bool. Pass detached predictions (no gradient flows anyway).
    """

    def __init__(self, num_classes: int, topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
                 eps: float = 1e-9):
        if num_classes < 1 or topk < 1:
            raise ValueError(f"num_classes and topk must be >= 1. Received: num_classes={num_classes}, "
                             f"topk={topk}")
        self.num_classes = num_classes
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    def __call__(self, pred_scores, pred_boxes, anchor_points, gt_classes, gt_boxes):
        pred_scores = ops.cast(pred_scores, "float32")
        pred_boxes = ops.cast(pred_boxes, "float32")
        gt_boxes = ops.cast(gt_boxes, "float32")
        anchor_points = ops.cast(anchor_points, "float32")
        gt_classes = ops.cast(gt_classes, "int32")
        num_anchors = anchor_points.shape[0]
        num_gts = gt_boxes.shape[1]
        if num_gts is None:
            raise ValueError(f"gt_boxes needs a static number of boxes M (pad to a fixed M). "
                             f"Received: shape={tuple(gt_boxes.shape)}")

        valid_gt = ops.cast(gt_classes >= 0, "float32")  # (B, M)
        gt_one_hot = ops.one_hot(ops.maximum(gt_classes, 0), self.num_classes) * valid_gt[..., None]  # (B, M, C)

        # Candidates: anchor centre strictly inside the gt box.  (B, M, A)
        x, y = anchor_points[:, 0], anchor_points[:, 1]
        margins = ops.stack([x - gt_boxes[..., 0:1], y - gt_boxes[..., 1:2],
                             gt_boxes[..., 2:3] - x, gt_boxes[..., 3:4] - y], axis=-1)
        inside = ops.cast(ops.min(margins, axis=-1) > self.eps, "float32") * valid_gt[..., None]

        overlaps = ops.maximum(box_iou(gt_boxes, pred_boxes), 0.0) * inside  # (B, M, A)
        class_scores = ops.einsum("bmc,bac->bma", gt_one_hot, pred_scores)
        metric = (class_scores**self.alpha) * (overlaps**self.beta) * inside

        # Top-k candidates per gt. Ties (e.g. zeros) pick the lowest anchor index.
        k = min(self.topk, num_anchors)
        _, top_indices = ops.top_k(metric, k=k)  # (B, M, k)
        in_topk = sum(ops.one_hot(top_indices[..., i], num_anchors) for i in range(k))  # no (B, M, k, A)
        positive = in_topk * inside  # (B, M, A), padding already zero via `inside`

        # An anchor positive for several gts keeps the one with the highest IoU.
        if num_gts > 1:
            num_positive = ops.sum(positive, axis=1, keepdims=True)  # (B, 1, A)
            best_gt = ops.argmax(ops.where(positive > 0, overlaps, -1.0), axis=1)  # (B, A)
            best_one_hot = ops.transpose(ops.one_hot(best_gt, num_gts), (0, 2, 1))  # (B, M, A)
            positive = ops.where(num_positive > 1, best_one_hot * positive, positive)

        foreground = ops.sum(positive, axis=1) > 0  # (B, A)
        target_boxes = ops.einsum("bma,bmk->bak", positive, gt_boxes)
        target_one_hot = ops.einsum("bma,bmc->bac", positive, gt_one_hot)

        metric = metric * positive
        max_metric = ops.max(metric, axis=-1, keepdims=True)  # (B, M, 1)
        max_overlap = ops.max(overlaps * positive, axis=-1, keepdims=True)
        normalized = ops.max(metric * max_overlap / (max_metric + self.eps), axis=1)  # (B, A)
        target_scores = target_one_hot * normalized[..., None]
        return target_boxes, target_scores, foreground
