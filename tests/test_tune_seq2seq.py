"""`kts seq2seq tune` end to end on the smoke preset: the objective is the validation BLEU
logged each epoch (greedy), the best trial alone is scored on the test split (beam BLEU)."""

import json
import math
from pathlib import Path

import pytest

from shared.cli import main as kts
from shared.training import read_history

pytestmark = [pytest.mark.backend, pytest.mark.slow]


def test_seq2seq_tune_maximises_validation_bleu(tmp_path, capsys):
    study = tmp_path / "study"
    argv = ["seq2seq", "tune", "--preset", "smoke", "--workdir", str(study), "--reports-dir",
            str(tmp_path / "reports"), "--quiet", "--param", "train.learning_rate=choice(0.003,0.01)",
            "--sampler", "grid", "--pruner", "none", "--trials", "2"]
    assert kts(argv) == 0, capsys.readouterr().err
    saved = json.loads((study / "report" / "trials.json").read_text())
    assert saved["settings"]["metric"] == "val_bleu" and saved["settings"]["direction"] == "maximize"
    assert [t["state"] for t in saved["trials"]] == ["COMPLETE", "COMPLETE"]
    best = saved["best"]
    assert best["value"] == max(t["value"] for t in saved["trials"])
    history = read_history(Path(best["run_dir"]) / "logs" / "history.csv")["val_bleu"]
    assert best["value"] == [v for v in history if math.isfinite(v)][-1]
    results = json.loads((Path(best["run_dir"]) / "evaluation" / "results.json").read_text())
    assert saved["test"] == results["bleu"] and 0.0 <= saved["test"] <= 100.0  # beam BLEU, scored once
    assert (study / "report" / "index.html").exists() and (study / "best_config.json").exists()
