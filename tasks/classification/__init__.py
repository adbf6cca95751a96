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

    def train(self, run):
        from tasks.classification.training import train

        return train(run)

    def evaluate(self, run):
        from tasks.classification.evaluation import evaluate

        return evaluate(run)

    def export(self, run):
        from tasks.classification.export import export

        return export(run)

    def report(self, run):
        from tasks.classification.reporting import report

        return report(run)

    def predict(self, run, inputs, out=None):
        from tasks.classification.predict import predict

        return predict(run, inputs, out)


TASK = ClassificationTask()
