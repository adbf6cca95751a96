"""The Task contract: what every task package provides, and the run folder it writes.

A task subclasses `Task` and implements `train`, `evaluate`, `export`, `report` and
`predict` over a `Run` (config + folders + options). The CLI only parses arguments and calls
these; tests call them directly with the `smoke` preset.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from shared import config as config_lib
from shared.io import atomic_write_json


class CommandAliases(dict):
    """A task's `aliases` (extra command -> stage) that remembers the command the CLI last
    looked up, for tasks whose several commands run one stage (embeddings' `similar` and
    `analogy`, faces' `verify`, `enroll` and `identify` all run predict)."""

    requested = "predict"

    def get(self, key, default=None):
        self.requested = key
        return super().get(key, default)


@dataclasses.dataclass
class RunDir:
    """The folder of one run; every path a task writes is named here."""

    root: Path
    task: str = ""  # for messages that name the command to run

    def __post_init__(self):
        self.root = Path(self.root)

    config_json = property(lambda self: self.root / "config.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    logs = property(lambda self: self.root / "logs")
    history_csv = property(lambda self: self.root / "logs" / "history.csv")
    model_keras = property(lambda self: self.root / "model.keras")
    saved_model = property(lambda self: self.root / "export" / "saved_model")
    evaluation = property(lambda self: self.root / "evaluation")
    report = property(lambda self: self.root / "report")
    timings_json = property(lambda self: self.root / "timings.json")
    training_json = property(lambda self: self.root / "training.json")

    def require_model(self) -> Path:
        """model.keras, checked: a clear error when it is missing, damaged (truncated) or
        holds non-finite weights, naming the file and the command that writes it again."""
        from shared.export import check_keras_file

        train = f"kts {self.task or '<task>'} train --workdir {self.root}"
        if not self.model_keras.exists():
            raise FileNotFoundError(
                f"No trained model at {self.model_keras}. Train first "
                f"({train}) or pass the --workdir of a trained run.")
        return check_keras_file(self.model_keras, train)

    def evaluation_results(self) -> dict:
        """evaluation/results.json, or a clear error saying to evaluate first."""
        path = self.evaluation / "results.json"
        if not path.exists():
            raise FileNotFoundError(f"No evaluation at {path}; run "
                                    f"`kts {self.task or '<task>'} evaluate --workdir {self.root}` first.")
        return json.loads(path.read_text())

    def timings(self) -> dict:
        if self.timings_json.exists():
            return json.loads(self.timings_json.read_text())
        return {}

    def record_timing(self, stage: str, seconds: float) -> None:
        timings = self.timings()
        timings[stage] = round(seconds, 3)
        atomic_write_json(self.timings_json, timings)


@dataclasses.dataclass
class Run:
    """Everything a task stage needs: the config, the run folder and the options."""

    config: object
    dir: RunDir
    data_root: Path
    preset: str = ""
    resume: bool = False
    quiet: bool = False
    reports_dir: Path = Path("reports")
    options: dict = dataclasses.field(default_factory=dict)  # the task's extra_arguments, parsed

    @property
    def verbose(self) -> int:
        return 2 if self.quiet else 1


class Task:
    """Base class of a task. Subclasses set `name`, `config_class`, `presets` and `stages`:
    stage name -> "module:function" taking (run, **kwargs), imported only when called (so
    the CLI stays fast and Keras is imported after the backend is chosen)."""

    name: str = ""
    config_class: type = object
    presets: dict = {}
    stages: dict[str, str] = {}
    commands = ("train", "evaluate", "export", "predict", "report", "run")
    aliases: dict[str, str] = {}  # extra command -> stage, e.g. {"translate": "predict"}
    extra_arguments: tuple = ()  # (flag, argparse kwargs) pairs; parsed into Run.options
    inputs_help: str = "predict: image files"  # what the CLI's positional inputs are, in --help
    # the backends on which the task's training is data-parallel (True: all, False: none);
    # elsewhere --distribute says so and trains on one device
    data_parallel: bool | tuple[str, ...] = True
    # `kts <task> tune`: the headline validation metric, a key of the Keras epoch logs (None:
    # the task cannot be tuned), its direction, and the key of evaluation/results.json that is
    # the same metric on the test split (for the best trial's train/val/test gap; None: none).
    tune_metric: str | None = None
    tune_direction: str = "maximize"  # or "minimize"
    tune_test_key: str | None = None

    # the config keys that turn `tune_metric` off, and the value that does (e.g.
    # {"eval.epoch_images": 0}); `check_tune` refuses such a config, and searching those keys
    tune_metric_switches: dict[str, object] = {}

    def check_tune(self, config, keys: list[str]) -> None:
        """Raises ConfigError when `kts <task> tune` cannot search `keys` from `config`: a key that
        changes the objective itself (trials would not be comparable), a setting that turns the
        tuned metric off. Runs before the first trial; tasks extend it."""
        for key, off in self.tune_metric_switches.items():
            value = config
            for part in key.split("."):
                value = getattr(value, part)
            if value == off:
                raise config_lib.ConfigError(
                    f"kts {self.name} tune {'maximises' if self.tune_direction == 'maximize' else 'minimises'} "
                    f"{self.tune_metric}, which {key}={off} turns off; "
                    f"set {key} (see kts {self.name} --show-config).")
            if key in keys:
                raise config_lib.ConfigError(f"{key} sets how {self.tune_metric} is measured, so trials would not "
                                             "be comparable; fix it with --set.")

    def _stage(self, stage: str):
        import importlib

        if stage not in self.stages:
            raise NotImplementedError(f"{self.name} has no {stage!r} stage")
        module, function = self.stages[stage].split(":")
        return getattr(importlib.import_module(module), function)

    def make_config(self, preset: str, overrides: list[str], seed: int | None = None):
        if preset not in self.presets:
            raise config_lib.ConfigError(
                f"Unknown preset {preset!r} for {self.name}. Expected one of: "
                f"{', '.join(self.presets)}")
        cfg = self.presets[preset]()
        if seed is not None:
            cfg.seed = seed
        return config_lib.apply_overrides(cfg, overrides)

    def describe_presets(self) -> str:
        lines = []
        for name, factory in self.presets.items():
            doc = (factory.__doc__ or "").strip()
            lines.append(f"{name}:\n    " + "\n    ".join(doc.splitlines()))
        return "\n".join(lines)

    # Stages; each returns something useful for tests (metrics, paths).
    def train(self, run: Run):
        from shared.checkpoints import TrainingDivergedError

        try:
            with self.distribution(run):
                return self._stage("train")(run)
        except TrainingDivergedError:
            if not run.resume:  # config.json is this run's now: an older model.keras left
                run.dir.model_keras.unlink(missing_ok=True)  # there would pass as its result
            raise

    def distribution(self, run: Run):
        """The context the train stage runs in: `train.distribute` (shared.distribute)."""
        import keras

        from shared import distribute

        train = getattr(run.config, "train", None)
        mode = getattr(train, "distribute", "none")
        backend = keras.backend.backend()
        supported = self.data_parallel if isinstance(self.data_parallel, tuple) else (
            (backend,) if self.data_parallel else ())
        if mode != "none" and backend not in supported:
            print(f"{self.name}: its training is not data-parallel on {backend}"
                  + (f" (only on {', '.join(supported)})" if supported else "")
                  + f"; train.distribute={mode} is ignored, training on one device.")
            mode = "none"
        return distribute.scope(mode, getattr(train, "batch_size", 1))

    def evaluate(self, run: Run) -> dict:
        return self._stage("evaluate")(run)

    def export(self, run: Run):
        return self._stage("export")(run)

    def report(self, run: Run) -> Path:
        return self._stage("report")(run)

    def predict(self, run: Run, inputs: list[str], out: Path | None = None):
        return self._stage("predict")(run, inputs, out)

    def run_stage(self, run: Run, stage: str, **kwargs):
        """Runs one stage and records its wall time in the run folder's timings.json."""
        started = time.perf_counter()
        result = getattr(self, stage)(run, **kwargs)
        run.dir.record_timing(stage, time.perf_counter() - started)
        if stage == "train" and run.resume:  # the stage's time is this process's share only
            from shared.training import epochs_seconds, read_history

            total = epochs_seconds(read_history(run.dir.history_csv))
            if total is not None:
                run.dir.record_timing("train, all epochs (across resumes)", total)
        return result

    def run_all(self, run: Run) -> dict:
        """train -> evaluate -> export -> report."""
        return {stage: self.run_stage(run, stage)
                for stage in ("train", "evaluate", "export", "report")}
