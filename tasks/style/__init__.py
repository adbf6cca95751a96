"""Neural style transfer: Gatys et al.'s optimisation (Adam or L-BFGS, multi-scale, colour
preservation) and Johnson et al.'s fast feed-forward stylizer trained by `fit()`, both on
VGG19 perceptual losses (ImageNet weights from a file or Keras' download, or labelled random
features where none are available); the stylizer exported as a uint8-in, uint8-out SavedModel.

    kts style run --preset demo
    kts style transfer CONTENT.jpg STYLE.jpg [STYLE2.jpg ...] --out result.png
    kts style stylize PHOTO.jpg ... --workdir runs/style/demo --out stylized/
"""

from __future__ import annotations

from shared.task import Task
from tasks.style.config import PRESETS, StyleConfig


class StyleTask(Task):
    name = "style"
    config_class = StyleConfig
    presets = PRESETS
    aliases = {"transfer": "transfer", "stylize": "predict"}
    standalone_commands = ("transfer",)  # take inputs, need no trained run folder
    stages = {
        "train": "tasks.style.training:train",
        "evaluate": "tasks.style.evaluation:evaluate",
        "export": "tasks.style.export:export",
        "report": "tasks.style.reporting:report",
        "predict": "tasks.style.predict:stylize",
        "transfer": "tasks.style.predict:transfer",
    }

    def transfer(self, run, inputs, out=None):
        return self._stage("transfer")(run, inputs, out)


TASK = StyleTask()
