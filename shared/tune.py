"""`kts <task> tune`: hyperparameter search over any config key, for every task.

    kts classification tune --preset smoke --param train.learning_rate=loguniform(1e-4,1e-1) \\
        --param model.width_multiplier=choice(1,2) --trials 20 --sampler tpe --pruner median --workers 2

The objective is the task's headline validation metric (`Task.tune_metric`, direction
`Task.tune_direction`), read from its Keras epoch logs; the test split is never looked at
during the search. Everything is checked before the first trial. The study folder
(`--workdir`, default runs/<task>/tune/<study>) holds study.db (SQLite, unless --storage),
tune.json (the settings), trials/trial-NNNN/ (ordinary run folders), best_config.json (for
`kts <task> run --config FILE`) and report/. Then the best trial alone is scored on the test
split, and the study report is written and linked from reports/index.html.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from shared import tune_space
from shared.config import ConfigError
from shared.io import atomic_write_json
from shared.tune_study import PRUNERS, SAMPLERS


def parser(task_name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"kts {task_name} tune", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="demo", help="the config every trial starts from")
    p.add_argument("--space", type=Path, help="YAML file: config key -> SPEC")
    p.add_argument("--param", action="append", default=[], metavar="KEY=SPEC",
                   help="searched key, repeatable: loguniform(a,b), uniform(a,b), int(a,b), choice(v1,v2,...)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fixed override for every trial, e.g. train.epochs=20")
    p.add_argument("--trials", type=int, required=True, help="trials in the study (in all, across --resume)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--storage", help="Optuna RDB URL (default: SQLite study.db in the study folder)")
    p.add_argument("--study", help="study name (default: the preset)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="gp needs torch")
    p.add_argument("--pruner", choices=PRUNERS, default="median")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted study (or join one from another machine)")
    p.add_argument("--seed", type=int, help="seed of the trials' configs and of the sampler")
    p.add_argument("--workdir", type=Path, help="study folder (default runs/<task>/tune/<study>)")
    p.add_argument("--data-root", type=Path)
    p.add_argument("--backend", choices=("tensorflow", "jax"), help="Keras backend of the trials")
    p.add_argument("--reports-dir", type=Path, default=Path("reports"))
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--worker-of", type=Path, help=argparse.SUPPRESS)  # internal: a worker process
    return p


def prepare(task, args) -> tuple[dict, list]:
    """Every check that needs no storage: task, space, sampler, counts. Returns (settings, space)."""
    from shared.runtime import resolve_data_root
    from shared.tune_study import gp_available

    if not task.tune_metric:
        raise ConfigError(f"{task.name} declares no validation metric to tune (Task.tune_metric); "
                          "kts tune cannot search it yet.")
    if args.trials < 1 or args.workers < 1:
        raise ConfigError(f"--trials and --workers must be >= 1. Received: --trials {args.trials} "
                          f"--workers {args.workers}")
    if args.sampler == "gp" and not gp_available():
        raise ConfigError("--sampler gp needs torch and scipy installed; use --sampler tpe.")
    base = task.make_config(args.preset, args.overrides, args.seed)
    space = tune_space.check_against_config(
        tune_space.parse_space(args.space, args.param),
        lambda: task.make_config(args.preset, args.overrides, args.seed))
    task.check_tune(base, [p.key for p in space])
    trials = args.trials
    if args.sampler == "grid":
        points = tune_space.grid_points(space)
        if trials > len(points):
            print(f"--sampler grid: the grid has {len(points)} points; running {len(points)} trials, "
                  f"not {trials}.")
            trials = len(points)
    name = args.study or args.preset
    study_dir = (args.workdir or Path("runs") / task.name / "tune" / name).resolve()
    epochs_searched = any(p.key == "train.epochs" for p in space)
    settings = {
        "task": task.name, "preset": args.preset, "overrides": args.overrides, "seed": base.seed,
        "study": name, "study_dir": str(study_dir),
        "storage": args.storage or f"sqlite:///{study_dir / 'study.db'}",
        "sampler": args.sampler, "pruner": args.pruner, "trials": trials, "workers": args.workers,
        "metric": task.tune_metric, "direction": task.tune_direction, "test_key": task.tune_test_key,
        "space": tune_space.describe(space), "max_epochs": 0 if epochs_searched else base.train.epochs,
        "data_root": str(resolve_data_root(args.data_root).resolve()),
        "reports_dir": str(args.reports_dir.resolve()), "quiet": args.quiet,
    }
    return settings, space


def _identity(settings: dict) -> dict:
    return {k: settings[k] for k in ("task", "preset", "metric", "space", "overrides")}


def _engine(settings: dict, resume: bool, worker: int, existing: int = 0):
    """(storage, study, resumed) for this process; the sampler seed differs per worker and run."""
    from shared.tune_study import make_pruner, make_sampler, make_storage, open_study

    storage = make_storage(settings["storage"])
    sampler = make_sampler(settings["sampler"], settings["seed"] + 1000 * worker + existing, settings["trials"])
    pruner = make_pruner(settings["pruner"], settings["max_epochs"], settings["trials"])
    study, resumed = open_study(storage, settings["storage"], settings["study"], settings["direction"],
                                _identity(settings), resume, sampler, pruner)
    return storage, study, resumed


def run_worker(settings: dict, space, storage, study, resume: bool) -> None:
    from shared import tune_trial
    from shared.tune_study import work

    task_module = __import__("shared.cli", fromlist=["load_task"]).load_task(settings["task"])
    base = task_module.make_config(settings["preset"], settings["overrides"], settings["seed"])
    study_dir = Path(settings["study_dir"])
    worker = os.environ.get("KTS_TUNE_WORKER", "0")

    def launch(job, beat):
        return tune_trial.launch(job, beat, settings, base, study_dir)

    work(study, storage, tune_space.distributions(space), settings["trials"], study_dir / ".ask.lock",
         resume, launch, log=lambda line: print(f"[worker {worker}] {line}", flush=True))


def worker_main(study_dir: Path) -> int:
    """A worker process started by the study process (--workers K): runs trials until done."""
    from shared.tune_trial import _watch_parent

    _watch_parent()
    settings = json.loads((study_dir / "tune.json").read_text())
    task = __import__("shared.cli", fromlist=["load_task"]).load_task(settings["task"])
    space = tune_space.check_against_config(  # typed exactly as the study process typed it
        [tune_space.parse_spec(k, v) for k, v in settings["space"].items()],
        lambda: task.make_config(settings["preset"], settings["overrides"], settings["seed"]))
    storage, study, _ = _engine(settings, True, int(os.environ.get("KTS_TUNE_WORKER", "1")),
                                int(os.environ.get("KTS_TUNE_EXISTING", "0")))
    run_worker(settings, space, storage, study, resume=os.environ.get("KTS_TUNE_RESUME") == "1")
    return 0


def main(task_name: str, argv: list[str]) -> int:
    from shared.cli import load_task
    from shared.io import check_writable

    args = parser(task_name).parse_args(argv)
    if args.worker_of:
        return worker_main(args.worker_of)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    task = load_task(task_name)
    settings, space = prepare(task, args)
    study_dir = Path(settings["study_dir"])
    check_writable(study_dir, "the study folder")
    check_writable(args.reports_dir, "the reports folder")
    study_dir.mkdir(parents=True, exist_ok=True)
    storage, study, resumed = _engine(settings, args.resume, 0, 0)
    existing = len(study.trials)
    if not resumed and args.sampler == "grid":
        for point in tune_space.grid_points(space)[:settings["trials"]]:
            study.enqueue_trial(point)
    atomic_write_json(study_dir / "tune.json", settings)
    print(f"kts tune: study {settings['study']!r} ({settings['storage']}), {settings['trials']} trials, "
          f"{args.workers} worker(s), sampler {args.sampler}, pruner {args.pruner}; objective "
          f"{settings['direction']} {settings['metric']}" + (f"; {existing} trials already" if resumed else ""),
          flush=True)
    workers = []
    for index in range(1, args.workers):
        env = {**os.environ, "KTS_TUNE_WORKER": str(index), "KTS_TUNE_EXISTING": str(existing),
               "KTS_TUNE_PARENT": str(os.getpid()), "KTS_TUNE_RESUME": "1" if args.resume else "0"}
        workers.append(subprocess.Popen([sys.executable, "-m", "shared.cli", task_name, "tune", "--trials", "1",
                                         "--worker-of", str(study_dir)], env=env))
    try:
        run_worker(settings, space, storage, study, resume=args.resume)
    finally:
        for process in workers:
            process.wait()
    from shared.tune_report import finish

    return finish(study, settings)
