"""kts tune's search space and its bad input: one clear line each, checked before any trial, and
a study database that is never left corrupt. No training here (fast)."""

import sqlite3

import pytest

from shared import tune_space
from shared.cli import main as kts
from shared.config import ConfigError
from tasks.classification import TASK


def smoke():
    return TASK.make_config("smoke", [])


def test_specs_parse_to_typed_params():
    space = tune_space.parse_space(None, ["train.learning_rate=loguniform(1e-4, 1e-1)",
                                          "train.weight_decay=uniform(0,1e-3)", "train.batch_size=int(16,64)",
                                          "model.name=choice(lenet5,resnet20)",
                                          "model.width_multiplier=choice(1,2)"])
    checked = tune_space.check_against_config(space, smoke)
    by_key = {p.key: p for p in checked}
    assert by_key["train.learning_rate"].kind == "loguniform" and by_key["train.learning_rate"].low == 1e-4
    assert by_key["train.batch_size"].grid_values() == list(range(16, 65))
    assert by_key["model.width_multiplier"].choices == (1.0, 2.0)  # typed by the config field
    assert tune_space.describe(checked)["model.name"] == "choice(lenet5,resnet20)"
    config = tune_space.apply_params(smoke(), {"train.learning_rate": 0.01, "model.name": "resnet20"})
    assert config.train.learning_rate == 0.01 and config.model.name == "resnet20"


def test_space_file_and_param_override(tmp_path):
    path = tmp_path / "tune.yaml"
    path.write_text("train.learning_rate: loguniform(1e-4, 1e-1)\nmodel.name: [lenet5, resnet20]\n")
    space = tune_space.parse_space(path, ["train.learning_rate=uniform(0.001,0.01)"])
    assert [(p.key, p.kind) for p in space] == [("train.learning_rate", "uniform"), ("model.name", "choice")]


def test_grid_points_in_order_and_grid_refuses_float_ranges():
    space = tune_space.parse_space(None, ["train.batch_size=int(16,17)", "model.name=choice(a,b)"])
    assert tune_space.grid_points(space) == [
        {"train.batch_size": 16, "model.name": "a"}, {"train.batch_size": 16, "model.name": "b"},
        {"train.batch_size": 17, "model.name": "a"}, {"train.batch_size": 17, "model.name": "b"}]
    with pytest.raises(ConfigError, match="grid needs choice"):
        tune_space.grid_points(tune_space.parse_space(None, ["train.learning_rate=uniform(0,1)"]))


@pytest.mark.parametrize("params, message", [
    ([], "The search space is empty"),
    (["train.learning_rate=logunifrom(1e-4,1e-1)"], "cannot parse the SPEC"),
    (["train.learning_rate=uniform(1e-4)"], "takes exactly two bounds"),
    (["train.learning_rate=uniform(a,b)"], "the bounds must be numbers"),
    (["train.learning_rate=loguniform(1e-1,1e-4)"], "reversed or equal"),
    (["train.learning_rate=loguniform(0,1)"], "loguniform needs 0 < a < b"),
    (["train.learning_rat=loguniform(1e-4,1e-1)"], "Unknown config key 'train.learning_rat'"),
    (["train.epochs=uniform(1,4)"], "Expected int"),
    (["train.learning_rate=uniform(-1,1)"], "train.learning_rate must be > 0"),
    (["model.name=choice(lenet5,vgg)"], "Invalid value for model.name: 'vgg'"),
    (["train.learning_rate"], "--param expects KEY=SPEC"),
])
def test_bad_space_is_one_clear_line_and_no_study(tmp_path, capsys, params, message):
    argv = ["classification", "tune", "--preset", "smoke", "--trials", "2", "--workdir", str(tmp_path / "s")]
    for param in params:
        argv += ["--param", param]
    assert kts(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "s").exists()  # nothing written before the space is valid


def test_unreachable_storage_is_one_line(tmp_path, capsys):
    argv = ["classification", "tune", "--preset", "smoke", "--trials", "2", "--workdir", str(tmp_path / "s"),
            "--param", "train.learning_rate=loguniform(1e-4,1e-1)"]
    assert kts(argv + ["--storage", f"sqlite:///{tmp_path}/no/such/folder/x.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Cannot open the study storage" in err and len(err.splitlines()) == 1, err
    assert kts(argv + ["--storage", "postgresql://kts@127.0.0.1:9/none"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Cannot open the study storage 'postgresql://" in err and len(err.splitlines()) == 1, err


def test_existing_study_with_another_space_or_without_resume(tmp_path, capsys):
    from shared.tune_study import make_storage, open_study

    url = f"sqlite:///{tmp_path / 's' / 'study.db'}"
    (tmp_path / "s").mkdir()
    identity = {"task": "classification", "preset": "smoke", "metric": "val_accuracy",
                "space": {"train.learning_rate": "loguniform(0.0001,0.1)"}, "overrides": []}
    open_study(make_storage(url), url, "smoke", "maximize", identity, False, None, None)
    argv = ["classification", "tune", "--preset", "smoke", "--trials", "2", "--workdir", str(tmp_path / "s")]
    assert kts(argv + ["--param", "train.weight_decay=uniform(0,0.001)"]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists with another space" in err and len(err.splitlines()) == 1, err
    assert kts(argv + ["--param", "train.learning_rate=loguniform(1e-4,1e-1)"]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "--resume" in err, err
    with sqlite3.connect(tmp_path / "s" / "study.db") as db:  # intact, and still without trials
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM trials").fetchone() == (0,)


def test_a_task_without_a_tune_metric_says_so(tmp_path, capsys, monkeypatch):
    from tasks.detection import DetectionTask

    monkeypatch.setattr(DetectionTask, "tune_metric", None)  # every task declares one now
    argv = ["detection", "tune", "--preset", "smoke", "--trials", "2", "--workdir", str(tmp_path / "s"),
            "--param", "train.learning_rate=loguniform(1e-4,1e-1)"]
    assert kts(argv) == 2
    assert "declares no validation metric" in capsys.readouterr().err


def test_a_task_refuses_keys_that_change_its_objective_before_any_trial(tmp_path, capsys):
    argv = ["style", "tune", "--preset", "smoke", "--trials", "2", "--workdir", str(tmp_path / "s"),
            "--param", "model.style_weight=loguniform(1,100)"]
    assert kts(argv) == 2
    assert "define the loss" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before the study folder is made
    argv = ["seq2seq", "tune", "--preset", "smoke", "--trials", "2", "--workdir", str(tmp_path / "t"),
            "--set", "eval.epoch_bleu_sentences=0", "--param", "train.learning_rate=loguniform(1e-4,1e-1)"]
    assert kts(argv) == 2
    assert "tune maximises val_bleu, which eval.epoch_bleu_sentences=0 turns off" in capsys.readouterr().err
    argv = ["detection", "tune", "--preset", "smoke", "--trials", "2", "--workdir", str(tmp_path / "d"),
            "--param", "eval.epoch_images=int(4,8)"]
    assert kts(argv) == 2
    assert "eval.epoch_images sets how val_map50 is measured" in capsys.readouterr().err
