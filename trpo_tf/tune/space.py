"""A hyperparameter search space, read from YAML next to the experiment.

::

    # experiments/mujoco/hopper.space.yaml
    trainer.max_kl: {loguniform: [0.005, 0.1]}
    advantage.lam: {uniform: [0.9, 0.99]}
    value.epochs: {int: [5, 20]}
    trainer.steps_per_iteration: {choice: [1024, 2048, 4096]}
    policy.hidden: {choice: [[64, 64], [256, 256]]}

Each key is an experiment key path; each value one distribution:
``uniform``/``loguniform`` ``[low, high]`` (floats), ``int``/``intlog``
``[low, high]`` (integers, bounds included) or ``choice`` ``[option, ...]``
(any YAML values). Every key path and every bound is checked against the
experiment's schema before a trial runs (a bound ``--set`` would refuse is an
error naming the key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trpo_tf.errors import ConfigError

KINDS = ("uniform", "loguniform", "int", "intlog", "choice")


@dataclass(frozen=True)
class Dimension:
    """One searched key: ``kind`` over ``values`` (bounds, or the options of a choice)."""

    key: str
    kind: str
    values: tuple[Any, ...]

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna ``trial`` proposes for this key."""
        if self.kind == "choice":
            # Optuna's choices must be scalars: suggest an index, keep the options here.
            index = trial.suggest_categorical(self.key, list(range(len(self.values))))
            return self.values[index]
        low, high = self.values
        if self.kind in ("uniform", "loguniform"):
            return trial.suggest_float(self.key, low, high, log=self.kind == "loguniform")
        return trial.suggest_int(self.key, low, high, log=self.kind == "intlog")

    def value_of(self, param: Any) -> Any:
        """The config value of an Optuna parameter (a choice is stored as its index)."""
        return self.values[param] if self.kind == "choice" else param


def override(key: str, value: Any) -> str:
    """``--set`` text for ``key=value`` (the value written as YAML)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return f"{key}={text.removesuffix('...').strip()}"


def load_space(path: str | Path) -> tuple[Dimension, ...]:
    """The search space in ``path``.

    Raises:
        ConfigError: the file is missing or unreadable, or an entry is not one of
            :data:`KINDS` with well-formed bounds or options (the message names it).
    """
    from trpo_tf.config.yaml_input import load_yaml

    path = Path(path)
    try:
        document = load_yaml(path.read_text())
    except OSError as error:
        raise ConfigError(f"search space {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise ConfigError(f"search space {path} is not valid YAML: {detail}") from None
    if not isinstance(document, Mapping) or not document:
        raise ConfigError(
            f"search space {path} must map key paths to distributions, e.g. "
            "'trainer.max_kl: {loguniform: [0.005, 0.1]}'"
        )
    return tuple(_dimension(str(key), spec, path) for key, spec in document.items())


def _dimension(key: str, spec: Any, path: Path) -> Dimension:
    where = f"search space {path}: {key}"
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(
            f"{where} must be one of {{{', '.join(f'{k}: ...' for k in KINDS)}}}, got {spec!r}"
        )
    kind, values = next(iter(spec.items()))
    if kind not in KINDS:
        raise ConfigError(f"{where}: unknown distribution '{kind}'; use one of {', '.join(KINDS)}")
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ConfigError(f"{where}: {kind} needs a list, got {values!r}")
    if kind == "choice":
        return Dimension(key, kind, tuple(values))
    if len(values) != 2:
        raise ConfigError(f"{where}: {kind} needs [low, high], got {values!r}")
    low, high = values
    integer = kind in ("int", "intlog")
    number = int if integer else (int, float)
    if any(isinstance(v, bool) or not isinstance(v, number) for v in values):
        what = "integers" if integer else "numbers"
        raise ConfigError(f"{where}: {kind} bounds must be {what}, got {values!r}")
    if not all(math.isfinite(v) for v in values) or not low < high:
        raise ConfigError(f"{where}: {kind} needs finite low < high, got {values!r}")
    if kind in ("loguniform", "intlog") and low <= 0:
        raise ConfigError(f"{where}: {kind} needs low > 0, got {values!r}")
    bounds = (int(low), int(high)) if integer else (float(low), float(high))
    return Dimension(key, kind, bounds)


def check_space(
    experiment: str | Path, overrides: Sequence[str], space: Sequence[Dimension]
) -> None:
    """Every bound and option of ``space`` is a value the experiment accepts.

    Raises:
        ConfigError: the first that is not (unknown key path, out of range, wrong type).
    """
    from trpo_tf.config import load_experiment

    for dimension in space:
        for value in dimension.values:
            try:
                load_experiment(experiment, [*overrides, override(dimension.key, value)])
            except ConfigError as error:
                raise ConfigError(f"search space {dimension.key}: {error}") from None
