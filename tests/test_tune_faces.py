"""`kts faces tune` end to end (slow tier): two trials of the smoke preset searched on the
per-epoch validation AUC (`val_auc`, the validation pairs the deployed threshold is chosen on);
the best trial's value is its history's last finite val_auc, the evaluation pairs are scored
once for it alone, and the study report is written."""

import json
import math
from pathlib import Path

import pytest

from shared.cli import main as kts
from shared.training import read_history


@pytest.mark.slow
@pytest.mark.backend
def test_faces_tune_searches_the_validation_auc(tmp_path, capsys, data_root):
    study = tmp_path / "study"
    argv = ["faces", "tune", "--preset", "smoke", "--workdir", str(study), "--reports-dir", str(tmp_path / "reports"),
            "--data-root", str(data_root), "--quiet", "--param", "model.arcface_margin=choice(0.2,0.4)",
            "--sampler", "grid", "--pruner", "none", "--trials", "2"]
    assert kts(argv) == 0, capsys.readouterr().err
    saved = json.loads((study / "report" / "trials.json").read_text())
    assert saved["settings"]["metric"] == "val_auc" and saved["settings"]["direction"] == "maximize"
    assert [t["state"] for t in saved["trials"]] == ["COMPLETE", "COMPLETE"]
    best = saved["best"]
    values = read_history(Path(best["run_dir"]) / "logs" / "history.csv")["val_auc"]
    assert best["value"] == [v for v in values if math.isfinite(v)][-1] and 0.0 <= best["value"] <= 1.0
    scored = [t["number"] for t in saved["trials"] if (Path(t["run_dir"]) / "evaluation" / "results.json").exists()]
    assert scored == [best["number"]]  # the evaluation pairs are scored once, for the best trial only
    results = json.loads((Path(best["run_dir"]) / "evaluation" / "results.json").read_text())
    assert saved["test"] == results["auc"] == results["ours"]["auc"]
    assert (study / "report" / "index.html").exists() and (study / "best_config.json").exists()
    assert json.loads((study / "best_config.json").read_text())["model"]["arcface_margin"] in (0.2, 0.4)
