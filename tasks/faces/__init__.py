"""Face verification and one-shot identification: a ResNet embedding network trained with
triplet (batch-hard / semi-hard), contrastive or ArcFace losses on P x K identity batches;
10-fold verification, ROC, rank-k identification and an eigenfaces baseline; a SavedModel of
the embedding network with its deployed threshold; verify / enroll / identify commands.

    kts faces run --preset olivetti
    kts faces verify a.png b.png --workdir runs/faces/olivetti
    kts faces enroll people/ --gallery people.npz --workdir runs/faces/olivetti
    kts faces identify who.png --gallery people.npz --workdir runs/faces/olivetti
"""

from __future__ import annotations

from pathlib import Path

from shared.task import CommandAliases, Task
from tasks.faces.config import PRESETS, FacesConfig


class FacesTask(Task):
    name = "faces"
    config_class = FacesConfig
    presets = PRESETS
    aliases = CommandAliases(verify="predict", enroll="predict", identify="predict")
    inputs_help = "verify: two images; enroll: a folder (one sub-folder or image per person); identify: images"
    # ROC AUC of the validation pairs each epoch; the test one is evaluation/results.json "auc"
    tune_metric, tune_direction, tune_test_key = "val_auc", "maximize", "auc"
    extra_arguments = (
        ("--gallery", {"type": Path, "help": "enroll/identify: the gallery file (written atomically)"}),
        ("--threshold", {"type": float, "help": "verify/identify: distance threshold instead of the run's"}),
    )
    tune_metric_switches = {"eval.epoch_every": 0}
    stages = {
        "train": "tasks.faces.training:train",
        "evaluate": "tasks.faces.evaluation:evaluate",
        "export": "tasks.faces.export:export",
        "report": "tasks.faces.reporting:report",
        "verify": "tasks.faces.predict:verify",
        "enroll": "tasks.faces.predict:enroll",
        "identify": "tasks.faces.predict:identify",
    }

    def predict(self, run, inputs, out=None):
        command = self.aliases.requested if self.aliases.requested in self.aliases else "verify"
        return self._stage(command)(run, inputs, out)


TASK = FacesTask()
