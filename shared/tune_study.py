"""The search engine of `kts <task> tune`: Optuna storage, samplers, pruners and the worker loop.

Optuna owns the study (trials, parameters, intermediate values) in an RDB: an SQLite file in the
study folder by default, or any URL Optuna accepts (`postgresql://...`), shared by every worker
process on every machine. A worker asks for a trial under a lock (so N trials are started, not
more), trains it in its own subprocess (`shared.tune_trial`) and tells the result.

Each trial records its owner (host, pid) and a heartbeat. `--resume` claims the RUNNING trials
whose owner is gone (a dead pid on this host, or no heartbeat for `STALE_SECONDS` from another
host) and runs them again in their own run folder, continuing from their last checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from shared.config import ConfigError
from shared.io import file_lock

SAMPLERS = ("grid", "random", "tpe", "gp")
PRUNERS = ("none", "median", "hyperband")
STALE_SECONDS = 180  # a trial owned by another host with no heartbeat for this long is orphaned
HEARTBEAT_SECONDS = 20


def _quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def gp_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "scipy"))


def make_storage(url: str):
    """An Optuna RDBStorage for `url`; one clear line when it cannot be reached."""
    optuna = _quiet_optuna()
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as err:  # sqlalchemy's errors, a missing driver, a bad URL
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"Cannot open the study storage {url!r} (--storage): {reason}") from None


def make_sampler(name: str, seed: int, trials: int):
    optuna = _quiet_optuna()
    startup = max(2, min(10, trials // 3))  # random trials before the model-based ones
    if name in ("grid", "random"):  # grid: the points are enqueued; random fills nothing in
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "gp":
        if not gp_available():
            raise ConfigError("--sampler gp needs torch and scipy installed (pip install torch); "
                              "use --sampler tpe.")
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    raise ConfigError(f"Unknown sampler {name!r}. Expected one of: {', '.join(SAMPLERS)}")


def make_pruner(name: str, max_epochs: int, trials: int = 10):
    """median: stop a trial whose best metric so far is worse than the median of earlier trials
    at the same epoch, once max(2, min(5, trials // 3)) trials have finished and from epoch
    max(1, max_epochs // 3) on (a first search here, pruning from the 2nd of 8 epochs after 2
    trials, pruned 8 of 10 trials, some on par with the best at that epoch; docs/results.md);
    hyperband: successive-halving brackets over 1..max_epochs epochs."""
    optuna = _quiet_optuna()
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(2, min(5, trials // 3)),
                                           n_warmup_steps=max(1, max_epochs // 3))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, max_epochs), reduction_factor=3)
    raise ConfigError(f"Unknown pruner {name!r}. Expected one of: {', '.join(PRUNERS)}")


def open_study(storage, url: str, name: str, direction: str, identity: dict, resume: bool, sampler, pruner):
    """Creates the study, or loads it when it exists with the same identity (task, preset,
    metric, space) and `resume` is set; raises ConfigError otherwise, before writing anything."""
    optuna = _quiet_optuna()
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name not in names:
        try:
            study = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                        sampler=sampler, pruner=pruner)
            study.set_user_attr("kts", identity)
            return study, False
        except optuna.exceptions.DuplicatedStudyError:  # another machine created it just now
            pass
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    recorded = study.user_attrs.get("kts")
    if recorded is None:  # created by another tool, or killed between create and set_user_attr
        if study.trials:
            raise ConfigError(f"Study {name!r} in {url} was not made by kts tune; choose another --study.")
        study.set_user_attr("kts", identity)
        return study, False
    for field, what in (("task", "task"), ("metric", "metric"), ("space", "space"), ("preset", "preset"),
                        ("overrides", "set of --set overrides")):
        if recorded.get(field) != identity.get(field):
            raise ConfigError(f"Study {name!r} in {url} exists with another {what}: {recorded.get(field)} "
                              f"(this command: {identity.get(field)}). Choose another --study NAME.")
    if not resume:
        raise ConfigError(f"Study {name!r} already exists in {url} ({len(study.trials)} trials). Pass --resume to "
                          "continue it (or to join it from another machine), or choose another --study NAME.")
    return study, True


@dataclasses.dataclass
class Job:
    """One trial to run: its number, Optuna id, parameters, and whether it continues a run."""

    number: int
    trial_id: int
    params: dict
    resume: bool = False


@dataclasses.dataclass
class Outcome:
    state: str  # "complete" | "pruned" | "fail" | "error" (a config error that fails every trial)
    value: float | None = None
    message: str = ""
    attrs: dict = dataclasses.field(default_factory=dict)


def _owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned(trial, now: float | None = None) -> bool:
    """A RUNNING trial whose worker is gone."""
    owner = trial.system_attrs.get("kts_owner")
    if owner is None:  # asked, then killed before the owner was written
        return time.time() - trial.datetime_start.timestamp() > 5 if trial.datetime_start else True
    if owner["host"] == socket.gethostname():
        return not _alive(owner["pid"])
    return (now or time.time()) - owner.get("heartbeat", 0) > STALE_SECONDS


def next_job(study, storage, distributions: dict, trials: int, lock_path: Path, resume: bool) -> Job | None:
    """Under the study lock: an orphaned trial to continue (with --resume), else a new trial when
    fewer than `trials` have started; None when the study has its trials."""
    optuna = _quiet_optuna()
    running, waiting = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING
    with file_lock(lock_path):
        all_trials = study.get_trials(deepcopy=False)
        job = None
        if resume:
            for trial in all_trials:
                if trial.state == running and orphaned(trial):
                    job = Job(trial.number, trial._trial_id, dict(trial.params), resume=True)
                    break
        if job is None:
            if sum(t.state != waiting for t in all_trials) >= trials:
                return None
            trial = study.ask(distributions)
            job = Job(trial.number, trial._trial_id, dict(trial.params))
        storage.set_trial_system_attr(job.trial_id, "kts_owner", _owner())
        return job


def heartbeat(storage, job: Job) -> None:
    storage.set_trial_system_attr(job.trial_id, "kts_owner", _owner())


def tell(study, storage, job: Job, outcome: Outcome) -> None:
    optuna = _quiet_optuna()
    for key, value in outcome.attrs.items():
        storage.set_trial_user_attr(job.trial_id, key, value)
    if outcome.message:
        storage.set_trial_user_attr(job.trial_id, "message", outcome.message)
    state = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED}.get(
        outcome.state, optuna.trial.TrialState.FAIL)
    values = outcome.value if state == optuna.trial.TrialState.COMPLETE else None
    study.tell(job.number, values, state=state, skip_if_finished=True)


def work(study, storage, distributions: dict, trials: int, lock_path: Path, resume: bool,
         launch: Callable[[Job, Callable[[], None]], Outcome], log: Callable[[str], None] = print) -> list[Outcome]:
    """The worker loop: runs trials until the study has `trials` started ones. `launch(job,
    beat)` trains one (calling `beat()` now and then) and returns its Outcome. A config error
    that would fail every trial ends the loop and is raised."""
    outcomes = []
    while (job := next_job(study, storage, distributions, trials, lock_path, resume)) is not None:
        what = "continuing" if job.resume else "starting"
        log(f"trial {job.number}: {what} " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                      for k, v in job.params.items()))
        outcome = launch(job, lambda job=job: heartbeat(storage, job))
        tell(study, storage, job, outcome)
        outcomes.append(outcome)
        value = f" {outcome.value:.4f}" if outcome.value is not None else ""
        log(f"trial {job.number}: {outcome.state}{value}" + (f" ({outcome.message})" if outcome.message else ""))
        if outcome.state == "error":
            raise ConfigError(outcome.message)
    return outcomes
