"""Object detection, YOLOv8-style: anchor-free DFL head, task-aligned assigner, CIoU + DFL +
BCE loss, class-aware NMS inside `predict_step` and the SavedModel, COCO mAP (pycocotools).

    kts detection run --preset smoke      # overfits 4 BCCD images in ~2 min on CPU
    kts detection run --preset bccd --backend jax
"""

from __future__ import annotations

from shared.task import Task
from tasks.detection.config import PRESETS, DetectionConfig


class DetectionTask(Task):
    name = "detection"
    config_class = DetectionConfig
    presets = PRESETS
    # tune: COCO mAP@0.5 on validation images at epoch ends (eval.epoch_images, data.holdout)
    tune_metric, tune_direction, tune_test_key = "val_map50", "maximize", "map50"
    tune_metric_switches = {"eval.epoch_images": 0}
    stages = {
        "train": "tasks.detection.training:train",
        "evaluate": "tasks.detection.evaluation:evaluate",
        "export": "tasks.detection.export:export",
        "report": "tasks.detection.reporting:report",
        "predict": "tasks.detection.predict:predict",
    }


TASK = DetectionTask()
