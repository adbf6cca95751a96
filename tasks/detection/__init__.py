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

    def train(self, run):
        from tasks.detection.training import train

        return train(run)

    def evaluate(self, run):
        from tasks.detection.evaluation import evaluate

        return evaluate(run)

    def export(self, run):
        from tasks.detection.export import export

        return export(run)

    def report(self, run):
        from tasks.detection.reporting import report

        return report(run)

    def predict(self, run, inputs, out=None):
        from tasks.detection.predict import predict

        return predict(run, inputs, out)


TASK = DetectionTask()
