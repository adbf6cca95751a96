"""Typed dataclass configs with `--set a.b=value` overrides.

A task's config is a dataclass whose fields are scalars (int, float, bool, str, Literal
choices, Optional of those, tuples of ints/floats/strs) or nested config dataclasses.
Overrides are parsed with the field's type, so `--set train.epochs=3` gives an int and
`--set train.schedule=cosin` fails with the allowed values. Unknown keys name the keys
that do exist.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

from shared.io import atomic_write_json

Precision = Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"]


class ConfigError(ValueError):
    """A config key or value that is not allowed; the message says what is."""


@dataclasses.dataclass
class TrainConfig:
    """Training settings every task shares (consumed by `shared.training`)."""

    epochs: int = 10
    batch_size: int = 64  # the global batch: all devices and processes together
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    warmup_epochs: float = 0.0
    step_decay_epochs: tuple[int, ...] = ()
    step_decay_factor: float = 0.1
    label_smoothing: float = 0.0
    early_stopping_patience: int = 0  # 0 = off
    gradient_clip_norm: float = 0.0  # 0 = off
    precision: Precision = "auto"
    jit_compile: Literal["auto", "true", "false"] = "auto"
    workers: int = 0  # 0 = threads in this process; N > 0 = N worker processes
    prefetch: int = 2  # batches prepared ahead
    max_steps_per_epoch: int = 0  # 0 = the whole training split per epoch
    average_last_epochs: int = 0  # > 1: the final weights are the mean of the last N epochs' weights
    # data-parallel training (shared.distribute): none | auto (when > 1 device or process) | data_parallel
    distribute: Literal["none", "auto", "data_parallel"] = "none"
    # learning_rate as given (none), or times batch_size / lr_base_batch_size (linear)
    lr_scaling: Literal["none", "linear"] = "none"
    lr_base_batch_size: int = 0  # linear: the batch size learning_rate was tuned for

    def validate(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size,
                    "learning_rate": self.learning_rate}
        for key, value in positive.items():
            if value <= 0:
                raise ConfigError(f"train.{key} must be > 0. Received: {key}={value}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(
                f"train.label_smoothing must be in [0, 1). Received: {self.label_smoothing}")
        if self.lr_scaling == "linear" and self.lr_base_batch_size <= 0:
            raise ConfigError("train.lr_scaling=linear needs train.lr_base_batch_size > 0 (the batch "
                              "size train.learning_rate is for). Received: lr_base_batch_size="
                              f"{self.lr_base_batch_size}")
        if self.average_last_epochs < 0 or self.average_last_epochs > self.epochs:
            raise ConfigError(f"train.average_last_epochs must be in [0, epochs={self.epochs}]. "
                              f"Received: {self.average_last_epochs}")
        if self.warmup_epochs < 0 or self.warmup_epochs >= self.epochs > 1:
            raise ConfigError(
                f"train.warmup_epochs must be in [0, epochs={self.epochs}). "
                f"Received: {self.warmup_epochs}")


def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _type_name(tp) -> str:
    tp, optional = _unwrap_optional(tp)
    if typing.get_origin(tp) is Literal:
        name = " | ".join(repr(a) for a in typing.get_args(tp))
    elif typing.get_origin(tp) is tuple:
        name = f"comma-separated {typing.get_args(tp)[0].__name__}s"
    else:
        name = getattr(tp, "__name__", str(tp))
    return f"{name} or none" if optional else name


def parse_value(key: str, text: str, tp) -> Any:
    """Parses `text` as a value of type `tp`; raises ConfigError naming `key`."""
    tp, optional = _unwrap_optional(tp)
    if optional and text.strip().lower() in ("none", "null", ""):
        return None
    origin = typing.get_origin(tp)
    try:
        if origin is Literal:
            choices = typing.get_args(tp)
            for choice in choices:
                if str(choice) == text:
                    return choice
            raise ValueError
        if origin is tuple:
            (item_type, *_rest) = typing.get_args(tp)
            parts = [p.strip() for p in text.split(",") if p.strip()]
            return tuple(item_type(p) for p in parts)
        if tp is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if tp is str:
            return text
    except ValueError:
        pass
    raise ConfigError(f"Invalid value for {key}: {text!r}. Expected {_type_name(tp)}.")


def _fields(obj) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(obj)}


def all_keys(cfg, prefix: str = "") -> list[str]:
    """Every settable dotted key of a config, e.g. ['seed', 'train.epochs', ...]."""
    keys = []
    for name, (_, _tp) in _fields(cfg).items():
        value = getattr(cfg, name)
        if dataclasses.is_dataclass(value):
            keys.extend(all_keys(value, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def set_value(cfg, key: str, text: str) -> None:
    """Sets the dotted `key` of `cfg` from its text form (one `--set key=text`)."""
    node = cfg
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = _fields(node)
        if part not in fields:
            where = ".".join(parts[:depth]) or "the config"
            allowed = ", ".join(sorted(fields))
            raise ConfigError(f"Unknown config key {key!r}: {where} has no field {part!r}. "
                              f"Allowed: {allowed}")
        _, tp = fields[part]
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(getattr(node, part)):
                raise ConfigError(f"{key!r} is a section; set one of its fields, e.g. "
                                  f"{all_keys(getattr(node, part), key + '.')[0]}")
            setattr(node, part, parse_value(key, text, tp))
        else:
            node = getattr(node, part)
            if not dataclasses.is_dataclass(node):
                raise ConfigError(f"Unknown config key {key!r}: {'.'.join(parts[:depth + 1])} "
                                  "is a value, not a section.")


def apply_overrides(cfg, overrides: list[str]):
    """Applies `a.b=v` strings in order, then validates; returns cfg."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value. Received: {item!r}")
        key, text = item.split("=", 1)
        set_value(cfg, key.strip(), text.strip())
    validate(cfg)
    return cfg


def validate(cfg, prefix: str = "") -> None:
    """Rejects non-finite numbers (NaN, inf) in every field, then calls `validate()` on the
    config and every nested section that has one."""
    for name in _fields(cfg):
        value = getattr(cfg, name)
        if dataclasses.is_dataclass(value):
            validate(value, f"{prefix}{name}.")
            continue
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"{prefix}{name} must be a finite number. Received: "
                                  f"{prefix}{name}={value!r}")
    if hasattr(cfg, "validate"):
        cfg.validate()


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict, source: str = "config"):
    """Builds config `cls` from a nested dict (e.g. a run's config.json); unknown keys fail."""
    cfg = cls()
    _load_into(cfg, data, "", source)
    validate(cfg)
    return cfg


def _load_into(node, data: dict, prefix: str, source: str) -> None:
    fields = _fields(node)
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown key {prefix + key!r}. "
                              f"Allowed: {', '.join(sorted(fields))}")
        current = getattr(node, key)
        if dataclasses.is_dataclass(current):
            _load_into(current, value, f"{prefix}{key}.", source)
        else:
            tp = fields[key][1]
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            if value is None:
                text = "none"
            setattr(node, key, parse_value(prefix + key, text, tp))


def save(cfg, path: str | Path) -> Path:
    return atomic_write_json(path, to_dict(cfg))


def load(cls, path: str | Path):
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"No config at {path}: is this a run folder written by "
                                "`kts <task> train`?") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from None
    return from_dict(cls, data, source=str(path))


def describe(cfg) -> str:
    """Human-readable `key = value  (type)` listing, for `--help-config`."""
    lines = []

    def walk(node, prefix):
        for name, (_, tp) in _fields(node).items():
            value = getattr(node, name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{name}.")
            else:
                lines.append(f"{prefix}{name} = {value!r}  ({_type_name(tp)})")

    walk(cfg, "")
    return "\n".join(lines)
