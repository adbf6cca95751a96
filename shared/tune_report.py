"""The end of a study: the best trial's config file, its one test-split score, and the study
report (report/index.html + report.json, linked from reports/index.html as `<task> tune <study>`):
trials table, optimisation history, parameter importances, parallel coordinates, pruned vs
complete, wall time, and the best trial's train / validation / test gap with its remedy."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

from shared import tune_plots, tune_space
from shared.io import atomic_write_json
from shared.report import Report, update_index


def rows_of(study) -> list[dict]:
    """Plain rows of every trial, for the table, the figures and report.json."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = t.user_attrs.get("seconds")
        if seconds is None and t.datetime_start and t.datetime_complete:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params),
                     "curve": sorted(t.intermediate_values.items()), "seconds": seconds,
                     "epochs": t.user_attrs.get("epochs"), "train_value": t.user_attrs.get("train_value"),
                     "message": t.user_attrs.get("message", ""), "run_dir": t.user_attrs.get("run_dir", "")})
    return rows


def bias_variance(train: float | None, val: float, test: float | None, maximize: bool, metric: str) -> str:
    """One line: the train / validation / test values, the gaps, and the remedy they suggest."""
    if train is None:
        return f"{metric}: validation {val:.4f}" + (f", test {test:.4f}" if test is not None else "") + \
            " (no training-side value in the epoch logs, so no bias/variance reading)."
    gap = (train - val) if maximize else (val - train)  # > 0: the model does better on what it saw
    bounded = maximize and 0.0 <= train <= 1.0 and 0.0 <= val <= 1.0
    bias = (1.0 - train) if bounded else None
    parts = [f"train {train:.4f} / validation {val:.4f}" + (f" / test {test:.4f}" if test is not None else ""),
             f"train-validation gap {gap:+.4f}"]
    if bias is not None:
        parts.append(f"training error {bias:.4f}")
    if bias is not None:
        variance_bound = gap > max(0.02, bias)
    else:
        variance_bound = gap > 0.1 * max(abs(train), 1e-8)
    if variance_bound:
        remedy = "variance dominates: more regularisation (weight decay, dropout, augmentation) or more data"
    elif gap < -0.02:
        remedy = ("validation beats training: training-mode regularisation (augmentation, dropout, MixUp) "
                  "weighs on the training value; a bigger model or longer training is the next lever")
    else:
        remedy = "bias dominates: a bigger model or longer training (less regularisation)"
    if test is not None:
        drop = (val - test) if maximize else (test - val)
        if drop > max(0.02, 0.05 * abs(val)):
            remedy += f"; validation-test drop {drop:+.4f}: the search may have fit the validation split"
    return f"{metric}: " + ", ".join(parts) + f". Reading: {remedy}. (Training values are measured in " \
        "training mode, with augmentation and dropout.)"


def importances(study) -> dict[str, float]:
    import optuna

    try:
        return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError, ImportError):  # too few complete trials, one value
        return {}


def score_test_once(settings: dict, run_dir: Path) -> dict | None:
    """Evaluates the best trial's run folder (the test split), once: an existing evaluation is
    reused. None when the folder is not on this machine."""
    results = run_dir / "evaluation" / "results.json"
    if not results.exists():
        if not (run_dir / "model.keras").exists():
            return None
        command = [sys.executable, "-m", "shared.cli", settings["task"], "evaluate", "--workdir", str(run_dir),
                   "--data-root", settings["data_root"], "--quiet"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"kts tune: scoring the best trial on the test split failed: "
                  f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}", file=sys.stderr)
            return None
    return json.loads(results.read_text())


def finish(study, settings: dict) -> int:
    """Best config file, test score of the best trial, study report; returns the exit status."""
    from shared import config as config_lib
    from shared.cli import load_task

    study_dir = Path(settings["study_dir"])
    rows = rows_of(study)
    maximize = settings["direction"] == "maximize"
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    best = (max if maximize else min)(complete, key=lambda r: r["value"]) if complete else None
    task = load_task(settings["task"])
    test, line, command = None, "", ""
    if best is not None:
        base = task.make_config(settings["preset"], settings["overrides"], settings["seed"])
        config_path = config_lib.save(tune_space.apply_params(base, best["params"]), study_dir / "best_config.json")
        command = f"kts {settings['task']} run --config {config_path}"
        run_dir = Path(best["run_dir"] or study_dir / "trials" / f"trial-{best['number']:04d}")
        results = score_test_once(settings, run_dir)
        if results is not None and settings.get("test_key"):
            test = results.get(settings["test_key"])
        line = bias_variance(best["train_value"], best["value"], test, maximize, settings["metric"])
        print(f"kts tune: best trial {best['number']}: {settings['metric']} {best['value']:.4f}"
              + (f", test {settings['test_key']} {test:.4f} (scored once)" if test is not None else "")
              + f"; config {config_path}\n  reproduce: {command}\n  {line}")
    report_dir = write_report(study, settings, rows, best, test, line, command)
    print(f"kts tune: report {report_dir / 'index.html'}")
    if best is None:
        print("kts tune: no trial completed; see the trials' trial.log files.", file=sys.stderr)
        return 1
    return 0


def write_report(study, settings, rows, best, test, line, command) -> Path:
    metric, maximize = settings["metric"], settings["direction"] == "maximize"
    keys = list(settings["space"])
    counts = {state: sum(r["state"] == state for r in rows) for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    wall = sum(r["seconds"] or 0.0 for r in rows)
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    elapsed = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    rep = Report(settings["task"], f"Hyperparameter search: {settings['study']} ({settings['preset']} preset, "
                                   f"{settings['sampler']} sampler, {settings['pruner']} pruner)")
    headline = {f"best validation {metric}": best["value"] if best else "none",
                "best trial": best["number"] if best else "none"}
    if test is not None:
        headline[f"test {settings['test_key']} (best trial, scored once)"] = test
    headline.update({"complete": counts["COMPLETE"], "pruned": counts["PRUNED"], "failed": counts["FAIL"],
                     "trial wall time, summed": f"{wall:.0f} s"})
    if elapsed is not None:
        headline["study wall time"] = f"{elapsed:.0f} s"
    rep.add_metrics(headline)
    if line:
        rep.add_text("Best trial: bias / variance", line)
        rep.add_text("Reproduce the best trial", f"{command}\n\nParameters: "
                     + ", ".join(f"{k}={tune_space.value_text(v)}" for k, v in best["params"].items()))
    rep.add_table("Trials", ["trial", "state", metric, *keys, "epochs", "seconds", "note"],
                  [[r["number"], r["state"].lower(), "" if r["value"] is None else f"{r['value']:.4f}",
                    *[_cell(r["params"].get(k)) for k in keys], r["epochs"] if r["epochs"] is not None else "",
                    "" if r["seconds"] is None else f"{r['seconds']:.1f}", r["message"][:160]] for r in rows],
                  note=f"Objective: {settings['direction']} {metric} (validation split, last epoch). "
                       f"Space: {', '.join(f'{k}={v}' for k, v in settings['space'].items())}.")
    rep.add_figure("history", tune_plots.history(rows, metric, maximize),
                   "Each complete trial's validation value and the best so far; x: a pruned trial's last value.")
    weights = importances(study)
    if weights:
        from shared import plots

        rep.add_figure("importances", plots.bar_chart(weights, "parameter importance (fANOVA)", "share"),
                       "How much of the objective's variance each parameter explains (Optuna's fANOVA over the "
                       "complete trials); a rough guide with few trials.")
    rep.add_figure("parallel_coordinates", tune_plots.parallel_coordinates(rows, keys, metric, maximize),
                   "One line per complete trial; darker is better.")
    rep.add_figure("pruned_vs_complete", tune_plots.intermediate_values(rows, metric),
                   f"{metric} after each epoch as reported to the pruner: complete (blue) and pruned (orange).")
    rep.add_figure("wall_time", tune_plots.wall_time(rows), "Seconds per trial: its process's wall time, Python and "
                   "Keras start-up included.")
    rep.set_run_info({k: v for k, v in settings.items() if k not in ("quiet",)},
                     {"python": platform.python_version(), "platform": platform.platform(),
                      "cpu_count": os.cpu_count(), "backend": os.environ.get("KERAS_BACKEND", "tensorflow")},
                     {"trials, summed": wall, **({"study, first start to last end": elapsed} if elapsed else {})})
    report_dir = Path(settings["study_dir"]) / "report"
    rep.write(report_dir)
    plain_rows = [{k: v for k, v in r.items()} for r in rows]
    atomic_write_json(report_dir / "trials.json", {"settings": settings, "trials": plain_rows,
                                                   "best": best, "test": test, "bias_variance": line,
                                                   "importances": weights})
    update_index(settings["reports_dir"], f"{settings['task']} tune {settings['study']}", report_dir,
                 {k: v for k, v in headline.items() if k not in ("trial wall time, summed", "study wall time")})
    return report_dir


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return "" if value is None else str(value)
