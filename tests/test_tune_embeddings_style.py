"""kts <task> tune end to end for word embeddings (val_analogy, the validation half of the
analogies) and style transfer (the fast stylizer's val_loss on a held-out photo): two trials
of the smoke preset, the best trial's value equal to its history's last finite value, the
test side scored once (embeddings: the test half) or absent (style: no test photo), and the
study report written."""

import json
import math
from pathlib import Path

import pytest

from shared.cli import main as kts
from shared.training import read_history


def _tune(task: str, tmp_path: Path, data_root: Path, capsys, *extra: str) -> dict:
    study = tmp_path / "study"
    argv = [task, "tune", "--preset", "smoke", "--workdir", str(study), "--data-root", str(data_root),
            "--reports-dir", str(tmp_path / "reports"), "--quiet", "--sampler", "grid", "--pruner", "none",
            "--trials", "2", *extra]
    assert kts(argv) == 0, capsys.readouterr().err
    saved = json.loads((study / "report" / "trials.json").read_text())
    assert [t["state"] for t in saved["trials"]] == ["COMPLETE", "COMPLETE"]
    best = saved["best"]
    history = read_history(Path(best["run_dir"]) / "logs" / "history.csv")
    metric = {"embeddings": "val_analogy", "style": "val_loss"}[task]
    assert best["value"] == [v for v in history[metric] if math.isfinite(v)][-1]
    assert (study / "report" / "index.html").exists() and (study / "best_config.json").exists()
    index = json.loads((tmp_path / "reports" / "index.json").read_text())
    assert index[f"{task} tune smoke"]["report"].endswith("study/report")
    return saved


@pytest.mark.slow
def test_embeddings_tune_selects_on_the_validation_half(tmp_path, data_root, capsys):
    saved = _tune("embeddings", tmp_path, data_root, capsys, "--param", "model.alpha=choice(0.025,0.05)")
    best = saved["best"]
    results = json.loads((Path(best["run_dir"]) / "evaluation" / "results.json").read_text())
    assert saved["test"] == results["test_analogy"] == results["analogy_halves"]["test"]["accuracy"]
    assert "val_analogy" in saved["bias_variance"]


@pytest.mark.slow
def test_style_tune_minimises_the_stylizer_val_loss_without_gatys(tmp_path, data_root, capsys):
    saved = _tune("style", tmp_path, data_root, capsys, "--param", "train.learning_rate=choice(0.001,0.003)")
    for trial in saved["trials"]:  # a trial trains the stylizer only
        assert not (Path(trial["run_dir"]) / "gatys").exists()
        assert "no Gatys result" in (Path(trial["run_dir"]) / "trial.log").read_text()
    assert saved["test"] is None and "train" in saved["bias_variance"]
