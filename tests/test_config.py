"""Typed config overrides: parsing, validation, round trips, clear errors."""

import dataclasses
from typing import Literal

import pytest

from shared import config as config_lib
from shared.config import ConfigError, TrainConfig
from tasks.classification.config import ClassificationConfig


@dataclasses.dataclass
class Inner:
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    path: str | None = None


@dataclasses.dataclass
class Outer:
    seed: int = 0
    rate: float = 0.5
    flag: bool = False
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_overrides_are_parsed_with_the_field_type():
    cfg = config_lib.apply_overrides(Outer(), ["seed=3", "rate=1e-3", "flag=true",
                                               "inner.mode=b", "inner.sizes=4,5,6",
                                               "inner.path=none"])
    assert (cfg.seed, cfg.rate, cfg.flag) == (3, 1e-3, True)
    assert cfg.inner == Inner(mode="b", sizes=(4, 5, 6), path=None)


@pytest.mark.parametrize("override, expected", [
    ("seed=abc", "Invalid value for seed: 'abc'. Expected int"),
    ("inner.mode=c", "Expected 'a' | 'b'"),
    ("inner.nope=1", "inner has no field 'nope'. Allowed: mode, path, sizes"),
    ("nope.x=1", "has no field 'nope'"),
    ("inner=1", "is a section"),
    ("seed", "--set expects key=value"),
    ("flag=maybe", "Expected bool"),
])
def test_bad_overrides_name_the_key_and_what_is_allowed(override, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace("|", r"\|")):
        config_lib.apply_overrides(Outer(), [override])


def test_validation_runs_after_overrides():
    with pytest.raises(ConfigError, match="train.epochs must be > 0"):
        config_lib.apply_overrides(ClassificationConfig(), ["train.epochs=0"])
    with pytest.raises(ConfigError, match="needs data.path"):
        config_lib.apply_overrides(ClassificationConfig(), ["data.source=folder"])


def test_save_load_round_trip(tmp_path):
    cfg = config_lib.apply_overrides(ClassificationConfig(), ["train.step_decay_epochs=3,6",
                                                              "train.schedule=step"])
    path = config_lib.save(cfg, tmp_path / "config.json")
    assert config_lib.load(ClassificationConfig, path) == cfg


def test_loading_a_config_with_an_unknown_key_fails(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"seed": 1, "train": {"epochz": 3}}')
    with pytest.raises(ConfigError, match="unknown key 'train.epochz'"):
        config_lib.load(ClassificationConfig, path)


@pytest.mark.parametrize("task", ["classification", "detection", "seq2seq"])
def test_every_preset_is_valid_and_documented(task):
    import importlib

    presets = importlib.import_module(f"tasks.{task}.config").PRESETS
    for name, factory in presets.items():
        config_lib.validate(factory())
        doc = factory.__doc__ or ""
        assert "Command:" in doc and "Expect" in doc, f"preset {name} lacks command/expectation"


def test_all_keys_lists_nested_fields():
    keys = config_lib.all_keys(TrainConfig())
    assert "epochs" in keys and "precision" in keys
    assert "train.epochs" in config_lib.all_keys(ClassificationConfig())
