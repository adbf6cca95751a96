"""kts <task> tune end to end on the classification smoke preset (epochs cut): a grid search whose
deliberately bad trial is pruned, the best trial alone scored on test, its config reproducing its
validation metric with `train --config`; two worker processes killed mid-study, then --resume,
finishing N trials with none lost or run twice."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.cli import main as kts
from shared.training import read_history

REPO = Path(__file__).resolve().parents[1]


def tune_argv(study: Path, *extra: str) -> list[str]:
    return ["classification", "tune", "--preset", "smoke", "--workdir", str(study),
            "--reports-dir", str(study.parent / "reports"), "--quiet", *extra]


def test_grid_search_prunes_the_bad_trial_and_the_best_config_reproduces(tmp_path, capsys):
    study = tmp_path / "study"
    argv = tune_argv(study, "--set", "train.epochs=3", "--param", "train.learning_rate=choice(0.01,0.005,1e-7)",
                     "--sampler", "grid", "--pruner", "median", "--trials", "3")
    assert kts(argv) == 0, capsys.readouterr().err
    saved = json.loads((study / "report" / "trials.json").read_text())
    states = {t["params"]["train.learning_rate"]: t["state"] for t in saved["trials"]}
    assert states == {0.01: "COMPLETE", 0.005: "COMPLETE", 1e-7: "PRUNED"}
    bad = next(t for t in saved["trials"] if t["state"] == "PRUNED")
    assert len(read_history(Path(bad["run_dir"]) / "logs" / "history.csv")["val_accuracy"]) == 2  # stopped early

    best = saved["best"]
    scored = [t["number"] for t in saved["trials"] if (Path(t["run_dir"]) / "evaluation" / "results.json").exists()]
    assert scored == [best["number"]]  # the test split is scored once, for the best trial only
    assert 0.0 < saved["test"] <= 1.0 and "train" in saved["bias_variance"]
    index = json.loads((tmp_path / "reports" / "index.json").read_text())
    assert index["classification tune smoke"]["report"].endswith("study/report")
    assert (study / "report" / "index.html").exists() and (study / "report" / "history.png").exists()

    rerun = tmp_path / "rerun"
    assert kts(["classification", "train", "--config", str(study / "best_config.json"), "--workdir", str(rerun),
                "--quiet"]) == 0
    assert read_history(rerun / "logs" / "history.csv")["val_accuracy"][-1] == best["value"]


def _processes_of(folder: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(folder).encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def test_two_workers_killed_then_resumed_finish_n_trials_once(tmp_path):
    import optuna

    study = tmp_path / "study"
    argv = tune_argv(study, "--set", "train.epochs=2", "--set", "train.max_steps_per_epoch=8",
                     "--param", "train.learning_rate=loguniform(1e-3,3e-2)", "--sampler", "random",
                     "--pruner", "none", "--trials", "3", "--workers", "2")
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen([sys.executable, "-m", "shared.cli", *argv], cwd=REPO, stdout=log,
                                 stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while not list(study.glob("trials/*/result.json")) and first.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        os.kill(first.pid, signal.SIGKILL)  # the study process only: its workers and trials notice
        first.wait()
    deadline = time.time() + 30
    while _processes_of(study) and time.time() < deadline:
        time.sleep(0.5)
    assert not _processes_of(study), "worker or trial processes outlived the killed study"

    done = subprocess.run([sys.executable, "-m", "shared.cli", *argv, "--resume"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "continuing" in done.stdout  # the killed trial(s) were claimed, not left RUNNING
    trials = optuna.load_study(study_name="smoke", storage=f"sqlite:///{study / 'study.db'}").trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    folders = sorted(p.name for p in (study / "trials").iterdir())
    assert folders == [f"trial-{n:04d}" for n in range(3)]
    for folder in folders:  # every trial trained its 2 epochs once (a resumed one: no repeated rows)
        assert len(read_history(study / "trials" / folder / "logs" / "history.csv")["val_accuracy"]) == 2
