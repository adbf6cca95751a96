"""One search trial: an ordinary run folder trained in its own process.

The worker (`launch`) writes the trial's full config.json and trial.json into
`<study>/trials/trial-NNNN/`, then runs `python -m shared.tune_trial FOLDER`, which trains it
like `kts <task> train` with `ReportMetric` reporting the task's validation metric to the study
each epoch (and stopping when the pruner says so), and writes result.json. Memory never grows
across trials, a crash fails one trial, and a trial process whose parent dies stops too.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from shared.io import atomic_write_json

CONFIG_ERROR_EXIT = 3


def trial_dir(study_dir: Path, number: int) -> Path:
    return Path(study_dir) / "trials" / f"trial-{number:04d}"


def last_finite(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return finite[-1] if finite else None


def launch(job, beat, settings: dict, base_config, study_dir: Path, log_errors=print):
    """Runs `job` in a subprocess (in the worker's process group); returns its Outcome."""
    from shared import config as config_lib
    from shared import tune_space
    from shared.config import ConfigError
    from shared.tune_study import HEARTBEAT_SECONDS, Outcome

    folder = trial_dir(study_dir, job.number)
    result_path = folder / "result.json"
    if job.resume and result_path.exists():  # it finished; the worker died before telling
        return _outcome(json.loads(result_path.read_text()), folder)
    try:
        config = tune_space.apply_params(base_config, job.params)
    except ConfigError as err:  # a combination the config refuses: this trial fails
        return Outcome("fail", message=str(err))
    folder.mkdir(parents=True, exist_ok=True)
    if not job.resume or not (folder / "config.json").exists():
        config_lib.save(config, folder / "config.json")
    atomic_write_json(folder / "trial.json", {
        "task": settings["task"], "storage": settings["storage"], "study": settings["study"],
        "trial_id": job.trial_id, "number": job.number, "metric": settings["metric"],
        "pruner": settings["pruner"], "max_epochs": settings["max_epochs"], "trials": settings["trials"],
        "resume": job.resume,
        "data_root": settings["data_root"], "preset": settings["preset"]})
    started = time.time()
    with open(folder / "trial.log", "a") as log:
        process = subprocess.Popen([sys.executable, "-m", "shared.tune_trial", str(folder)], stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, "KTS_TUNE_PARENT": str(os.getpid())})
        while process.poll() is None:
            try:
                process.wait(timeout=HEARTBEAT_SECONDS)
            except subprocess.TimeoutExpired:
                beat()
    seconds = time.time() - started
    if result_path.exists():
        outcome = _outcome(json.loads(result_path.read_text()), folder)
        outcome.attrs["seconds"] = round(seconds, 2)  # the trial process's wall time, start-up included
        return outcome
    tail = (folder / "trial.log").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return Outcome("fail", message=f"the trial process exited with {process.returncode}: {tail[0][:300]} "
                                   f"(log: {folder / 'trial.log'})", attrs={"seconds": round(seconds, 2)})


def _outcome(result: dict, folder: Path):
    from shared.tune_study import Outcome

    attrs = {k: result[k] for k in ("epochs", "train_value", "pruned_at") if k in result}
    attrs["train_seconds"] = result.get("seconds")
    attrs["run_dir"] = str(folder)
    return Outcome(result["state"], result.get("value"), result.get("message", ""), attrs)


def _watch_parent() -> None:
    """Exits this process when the worker that started it is gone (killed study)."""
    parent = int(os.environ.get("KTS_TUNE_PARENT", os.getppid()))

    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(143)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def _reporter(spec: dict):
    """report(step, value) -> prune?, against the trial in the study's storage."""
    import optuna

    from shared.tune_study import make_pruner, make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(spec["storage"])
    study = optuna.load_study(study_name=spec["study"], storage=storage,
                              sampler=optuna.samplers.RandomSampler(),
                              pruner=make_pruner(spec["pruner"], spec["max_epochs"], spec["trials"]))
    trial = optuna.trial.Trial(study, spec["trial_id"])

    def report(step: int, value: float) -> bool:
        if step not in trial._cached_frozen_trial.intermediate_values:
            trial.report(value, step)
        return trial.should_prune()

    return report


def main(folder: str) -> int:
    _watch_parent()
    folder = Path(folder)
    spec = json.loads((folder / "trial.json").read_text())
    from shared import config as config_lib
    from shared import runtime
    from shared.cli import load_task

    runtime.select_backend(None)
    task = load_task(spec["task"])
    config = config_lib.load(task.config_class, folder / "config.json")
    runtime.seed_everything(config.seed)
    runtime.set_precision(config.train.precision)

    from shared import tune_callback
    from shared.task import Run, RunDir
    from shared.training import read_history

    callback = tune_callback.ReportMetric(spec["metric"], _reporter(spec))
    tune_callback.register(callback)
    run = Run(config=config, dir=RunDir(folder, task.name), data_root=Path(spec["data_root"]),
              preset=spec["preset"], resume=spec["resume"], quiet=True)
    started = time.time()
    try:
        task.run_stage(run, "train")
    except tune_callback.MetricMissingError as err:
        atomic_write_json(folder / "result.json", {"state": "error", "message": f"{task.name}: {err}"})
        return CONFIG_ERROR_EXIT
    history = read_history(run.dir.history_csv)
    value = last_finite(history.get(spec["metric"], []))
    train_key = spec["metric"].removeprefix("val_")
    result = {"state": "pruned" if callback.pruned is not None else "complete", "value": value,
              "epochs": len(history.get(spec["metric"], [])), "pruned_at": callback.pruned,
              "train_value": last_finite(history.get(train_key, [])) if train_key != spec["metric"] else None,
              "seconds": round(time.time() - started, 2)}
    if value is None:
        result.update(state="fail", message=f"no finite {spec['metric']} in {run.dir.history_csv}")
    atomic_write_json(folder / "result.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
