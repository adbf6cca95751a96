"""Image classification: ResNet-family CNNs, transfer learning, on-device augmentation.

    kts classification run --preset digits      # train -> evaluate -> export -> report
    python -m tasks.classification train --preset smoke
"""

from __future__ import annotations

from shared.task import Task
from tasks.classification.config import PRESETS, ClassificationConfig


class ClassificationTask(Task):
    name = "classification"
    config_class = ClassificationConfig
    presets = PRESETS
    tune_metric, tune_direction, tune_test_key = "val_accuracy", "maximize", "accuracy"
    stages = {
        "train": "tasks.classification.training:train",
        "evaluate": "tasks.classification.evaluation:evaluate",
        "export": "tasks.classification.export:export",
        "report": "tasks.classification.reporting:report",
        "predict": "tasks.classification.predict:predict",
    }


TASK = ClassificationTask()
