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
    inputs_help = "stylize/predict: content images; transfer: CONTENT STYLE [STYLE ...]"
    standalone_commands = ("transfer",)  # take inputs, need no trained run folder
    # `kts style tune`: the fast stylizer's perceptual loss (content + style + TV) on fixed
    # crops of the held-out content photo(s) (data.val_photos). No test key: there is no test
    # photo (the kit has 3: 2 train, 1 validation); evaluation stylizes all of them as an
    # illustration, not a test score. Gatys' optimisation trains nothing and is not searched.
    tune_metric, tune_direction, tune_test_key = "val_loss", "minimize", None
    tune_metric_switches = {"data.val_photos": 0}
    stages = {
        "train": "tasks.style.training:train",
        "evaluate": "tasks.style.evaluation:evaluate",
        "export": "tasks.style.export:export",
        "report": "tasks.style.reporting:report",
        "predict": "tasks.style.predict:stylize",
        "transfer": "tasks.style.predict:transfer",
    }

    def check_tune(self, config, keys: list[str]) -> None:
        """Refuses what `kts style tune` cannot search: Gatys' settings (`transfer.*`: a per-image
        optimisation that trains nothing and has no validation loss; search trials skip it), and
        the keys that define the objective itself (`model.*`: features, layers and term weights;
        the style images and the validation set), whose val_loss values are not comparable
        (style_weight=0 would "win"); and a config without held-out photos (no val_loss)."""
        from shared.config import ConfigError

        super().check_tune(config, keys)  # data.val_photos=0: no held-out photo, no val_loss

        fixed = ("model.", "data.styles", "data.style_weights", "data.val_photos", "data.val_crops")
        gatys = [key for key in keys if key.startswith("transfer.")]
        if gatys:
            raise ConfigError(f"kts style tune searches the fast stylizer (its val_loss on held-out photos), not "
                              f"Gatys' per-image optimisation: {', '.join(gatys)} cannot be tuned (nothing is "
                              "trained, no validation split). Search stylizer.* or train.* keys.")
        objective = [key for key in keys if key.startswith(fixed)]
        if objective:
            raise ConfigError(f"{', '.join(objective)}: these define the loss (or its validation set) that kts "
                              "style tune minimises, so trials would not be comparable; fix them with --set and "
                              "search stylizer.* or train.* keys.")

    def transfer(self, run, inputs, out=None):
        return self._stage("transfer")(run, inputs, out)


TASK = StyleTask()
