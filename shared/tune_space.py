"""The search space of `kts <task> tune`: `--param KEY=SPEC` and `--space tune.yaml`.

    train.learning_rate=loguniform(1e-4,1e-1)   float, log scale (0 < a < b)
    train.weight_decay=uniform(0,1e-3)           float (a < b)
    model.width_multiplier=choice(1,1.5,2)      one of the values, each parsed by the key's type
    train.batch_size=int(16,64)                  integer in [a, b]

Keys are the dotted keys `--set` accepts. The space is checked against the task's config before
any trial: an unknown key, a SPEC that does not parse, reversed bounds, or a value the config
refuses (each bound and each choice is tried in the config) is one clear ConfigError.
A tune.yaml file maps each key to its SPEC (a list is a choice):

    train.learning_rate: loguniform(1e-4, 1e-1)
    model.name: [lenet5, resnet20]
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import re
from collections.abc import Callable
from pathlib import Path

from shared import config as config_lib
from shared.config import ConfigError

KINDS = ("loguniform", "uniform", "int", "choice")
_SPEC = re.compile(r"^\s*([a-z]+)\s*\((.*)\)\s*$", re.S)
GRID_LIMIT = 10_000


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched key: `kind` with bounds (`low`, `high`) or `choices`."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple = ()

    @property
    def spec(self) -> str:
        if self.kind == "choice":
            return f"choice({','.join(str(c) for c in self.choices)})"
        return f"{self.kind}({self.low:g},{self.high:g})"

    def probes(self) -> list:
        """The values checked against the config before the first trial."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def distribution(self):
        import optuna.distributions as d

        if self.kind == "choice":
            return d.CategoricalDistribution(self.choices)
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high))
        return d.FloatDistribution(float(self.low), float(self.high), log=self.kind == "loguniform")

    def grid_values(self) -> list:
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))
        raise ConfigError(f"--sampler grid needs choice(...) or int(a,b) for every key; {self.key} is "
                          f"{self.spec}. Use choice(...) with the values to try, or --sampler random|tpe.")


def value_text(value) -> str:
    """A sampled value as the text `--set` parses."""
    return repr(float(value)) if isinstance(value, float) else str(value)


def parse_spec(key: str, spec: str) -> Param:
    """Parses one SPEC for `key`; raises ConfigError naming both when it does not parse."""
    where = f"--param {key}={spec}"
    match = _SPEC.match(spec)
    if not match or match.group(1) not in KINDS:
        raise ConfigError(f"{where}: cannot parse the SPEC. Expected one of loguniform(a,b), uniform(a,b), "
                          "int(a,b), choice(v1,v2,...).")
    kind, body = match.group(1), match.group(2)
    items = [item.strip() for item in body.split(",")]
    if kind == "choice":
        if not body.strip() or any(not item for item in items):
            raise ConfigError(f"{where}: choice(...) needs one or more comma-separated values.")
        if len(set(items)) != len(items):
            raise ConfigError(f"{where}: choice(...) lists a value twice.")
        return Param(key, kind, choices=tuple(items))
    if len(items) != 2:
        raise ConfigError(f"{where}: {kind}(a,b) takes exactly two bounds. Received {len(items)}.")
    try:
        low, high = (int(i) for i in items) if kind == "int" else (float(i) for i in items)
    except ValueError:
        expected = "integers" if kind == "int" else "numbers"
        raise ConfigError(f"{where}: the bounds must be {expected}. Received: {body.strip()}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{where}: the bounds must be finite numbers.")
    if low > high or (low == high and kind != "int"):
        raise ConfigError(f"{where}: the bounds are reversed or equal (a={low:g} must be < b={high:g}).")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: loguniform needs 0 < a < b. Received a={low:g}.")
    return Param(key, kind, low, high)


def read_space_file(path: str | Path) -> dict[str, str]:
    """tune.yaml -> {key: SPEC text}; a clear error naming the file when it is not a mapping."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"No search-space file at {path} (--space).") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys to SPECs (key: loguniform(1e-4,1e-1)). "
                          f"Received a {type(data).__name__}.")
    specs = {}
    for key, spec in data.items():
        if isinstance(spec, list):
            spec = f"choice({','.join(str(v) for v in spec)})"
        if not isinstance(spec, str):
            raise ConfigError(f"{path}: {key}: expected a SPEC such as uniform(0,1) or a list of choices. "
                              f"Received: {spec!r}")
        specs[str(key)] = spec
    return specs


def parse_space(space_file: str | Path | None, params: list[str]) -> list[Param]:
    """The search space from --space FILE and --param KEY=SPEC (a --param replaces the file's key)."""
    specs = dict(read_space_file(space_file)) if space_file else {}
    for item in params:
        if "=" not in item:
            raise ConfigError(f"--param expects KEY=SPEC, e.g. train.learning_rate=loguniform(1e-4,1e-1). "
                              f"Received: {item!r}")
        key, spec = item.split("=", 1)
        specs[key.strip()] = spec.strip()
    if not specs:
        raise ConfigError("The search space is empty: give --param KEY=SPEC (repeatable) or --space tune.yaml.")
    return [parse_spec(key, spec) for key, spec in specs.items()]


def check_against_config(space: list[Param], make_config: Callable[[], object]) -> list[Param]:
    """Tries each bound and each choice of every key in the config (one at a time); returns the
    space with choice values converted to the key's type. Raises ConfigError naming the key."""
    checked = []
    for param in space:
        typed = []
        for value in param.probes():
            cfg = make_config()
            try:
                config_lib.set_value(cfg, param.key, value_text(value))
                config_lib.validate(cfg)
            except ConfigError as err:
                raise ConfigError(f"--param {param.key}={param.spec}: {err}") from None
            node = cfg
            for part in param.key.split("."):
                node = getattr(node, part)
            if isinstance(node, tuple):
                raise ConfigError(f"--param {param.key}: tuple-valued keys cannot be searched.")
            typed.append(node)
        if param.kind == "choice":
            param = dataclasses.replace(param, choices=tuple(typed))
        checked.append(param)
    return checked


def distributions(space: list[Param]) -> dict:
    return {param.key: param.distribution() for param in space}


def grid_points(space: list[Param]) -> list[dict]:
    """Every combination for --sampler grid, in the order the keys and values were given."""
    values = [param.grid_values() for param in space]
    size = math.prod(len(v) for v in values)
    if size > GRID_LIMIT:
        raise ConfigError(f"The grid has {size:,} points (more than {GRID_LIMIT:,}); use --sampler random|tpe.")
    return [dict(zip([p.key for p in space], combo)) for combo in itertools.product(*values)]


def apply_params(config, params: dict) -> object:
    """A copy of `config` with the trial's values set (and validated) like `--set` would."""
    config = copy.deepcopy(config)
    return config_lib.apply_overrides(config, [f"{k}={value_text(v)}" for k, v in params.items()])


def describe(space: list[Param]) -> dict[str, str]:
    """{key: SPEC}: what a study records to recognise its own space."""
    return {param.key: param.spec for param in space}
