"""kts detection tune end to end on the smoke preset (epochs cut): the objective is the epoch-end
val_map50 on validation images, the best trial's value is its history's last finite value, and
the best trial alone is scored on the report's split (mAP@0.5)."""

import json
import math
from pathlib import Path

import pytest

from shared.cli import main as kts
from shared.training import read_history

pytestmark = [pytest.mark.slow, pytest.mark.backend]  # 1109 s on TF at load 10 on 2 cores


def test_detection_tune_maximises_val_map50(tmp_path, capsys, data_root):
    study = tmp_path / "study"
    argv = ["detection", "tune", "--preset", "smoke", "--workdir", str(study), "--data-root", str(data_root),
            "--reports-dir", str(tmp_path / "reports"), "--quiet", "--trials", "2", "--sampler", "grid",
            "--pruner", "none", "--set", "train.epochs=3", "--set", "eval.epoch_every=3",
            "--param", "train.learning_rate=choice(0.01,0.003)"]
    assert kts(argv) == 0, capsys.readouterr().err
    saved = json.loads((study / "report" / "trials.json").read_text())
    assert [t["state"] for t in saved["trials"]] == ["COMPLETE", "COMPLETE"]
    best = saved["best"]
    assert best["number"] == max(saved["trials"], key=lambda t: t["value"])["number"]  # maximised
    history = read_history(Path(best["run_dir"]) / "logs" / "history.csv")["val_map50"]
    assert [math.isfinite(v) for v in history] == [True, False, True]  # the first and last epochs
    assert best["value"] == history[-1]
    results = json.loads((Path(best["run_dir"]) / "evaluation" / "results.json").read_text())
    assert saved["test"] == results["map50"] and 0.0 <= saved["test"] <= 1.0
    assert (study / "report" / "index.html").exists() and (study / "best_config.json").exists()
