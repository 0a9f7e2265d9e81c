"""The training config: one dataclass, saved as JSON beside every run (docs/training.md explains each key).

``TrainConfig`` holds what the shared trainer needs; ``recipe_options`` is handed untouched to
the recipe, which parses it with ``dataclass_from_dict`` into its own options dataclass.
Unknown keys and wrong types are refused with an ``InputError`` naming the key, so a typo in a
config never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from foleyflow.atomic import atomic_path
from foleyflow.errors import InputError

T = TypeVar("T")

MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULES = ("constant", "linear", "cosine")


@dataclasses.dataclass
class OptimizerConfig:
    """AdamW and its LR schedule, for one optimizer group."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    eps: float = 1e-8
    lr_schedule: str = "linear"
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        _require(self.lr > 0, f"optimizer lr must be > 0, got {self.lr}")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"optimizer betas must be two numbers in [0, 1), got {list(self.betas)}")
        _require(self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        _require(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        _require(self.max_grad_norm is None or self.max_grad_norm > 0, f"max_grad_norm must be > 0 or null, got {self.max_grad_norm}")


@dataclasses.dataclass
class TrainConfig:
    recipe: str
    recipe_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 8
    grad_accum_steps: int = 1
    mixed_precision: str = "no"
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    group_optimizers: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    ema_decay: float | None = 0.999
    ema_on_validation: bool = True
    export_ema: bool = True
    export_best: bool = False
    val_every: int = 100
    val_batches: int = 4
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    num_workers: int = 0
    ddp_find_unused_parameters: bool = False
    output_dir: str | None = None

    def __post_init__(self) -> None:
        _require(bool(self.recipe), "recipe must name a training recipe")
        for key in ("max_steps", "batch_size", "grad_accum_steps", "val_every", "checkpoint_every", "keep_checkpoints", "log_every"):
            _require(getattr(self, key) >= 1, f"{key} must be >= 1, got {getattr(self, key)}")
        _require(self.val_batches >= 0 and self.num_workers >= 0, "val_batches and num_workers must be >= 0")
        _require(self.mixed_precision in MIXED_PRECISION, f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {self.mixed_precision!r}")
        _require(self.ema_decay is None or 0 < self.ema_decay < 1, f"ema_decay must be in (0, 1) or null, got {self.ema_decay}")

    def optimizer_for(self, group: str) -> OptimizerConfig:
        """The default optimizer settings with this group's overrides applied."""
        overrides = self.group_optimizers.get(group, {})
        merged = {**dataclasses.asdict(self.optimizer), **overrides}
        return dataclass_from_dict(OptimizerConfig, merged, where=f"group_optimizers.{group}")

    def run_dir(self) -> Path:
        if self.output_dir:
            return Path(expand_path(self.output_dir))
        return foleyflow_home() / "runs" / self.recipe

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config") -> "TrainConfig":
        return dataclass_from_dict(cls, data, where)


def foleyflow_home() -> Path:
    """Root of caches and training runs: $FOLEYFLOW_HOME, default ~/.cache/foleyflow."""
    return Path(os.environ.get("FOLEYFLOW_HOME", "~/.cache/foleyflow")).expanduser()


def expand_path(path: str) -> str:
    """~ and $FOLEYFLOW_HOME in a config path; plain names such as "default" pass unchanged."""
    return os.path.expanduser(path.replace("$FOLEYFLOW_HOME", str(foleyflow_home())))


def load_train_config(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a JSON config; ``overrides`` maps dotted keys ("optimizer.lr") to values."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    return TrainConfig.from_dict(data, where=str(path))


def save_train_config(config: TrainConfig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")


def dataclass_from_dict(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from JSON data, refusing unknown keys and wrong types.

    Nested dataclass fields are built recursively; lists become tuples where the field is a tuple.
    """
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: expected an object, found {type(data).__name__}")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except TypeError as error:  # a required key is missing
        raise InputError(f"{where}: {error}") from None
    except ValueError as error:
        raise InputError(f"{where}: {error}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else dataclass_from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except InputError as error:
                errors.append(str(error))
        raise InputError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, found {type(value).__name__}")
        args = typing.get_args(hint)
        return tuple(_coerce(item, args[0], where) for item in value)
    if origin in (dict, list) or hint in (dict, list) or hint is Any:
        expected = origin or hint
        if expected is not Any and not isinstance(value, expected):
            raise InputError(f"{where}: expected a JSON {'object' if expected is dict else 'list'}, found {type(value).__name__}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (not isinstance(value, hint) or (hint is int and isinstance(value, bool))):
        raise InputError(f"{where}: expected {hint.__name__}, found {json.dumps(value)}")
    return value


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise InputError(f"override {dotted}: {key} is not an object")
    node[leaf] = value


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)
