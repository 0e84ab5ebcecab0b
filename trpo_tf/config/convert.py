"""Raw YAML data -> the frozen schema dataclasses, with key-path errors."""

from __future__ import annotations

import copy
import dataclasses
import decimal
import difflib
import json
import math
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any

from trpo_tf.config.overrides import Override
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.config.schema_info import (
    describe_type,
    field_names,
    format_number,
    is_scalar,
    is_section,
    join_path,
    show,
    type_hints,
    unknown_key,
)
from trpo_tf.errors import ConfigError

_BOUND_SYMBOLS = (("min", ">="), ("gt", ">"), ("max", "<="), ("lt", "<"))


class Converter:
    """Converts raw YAML data into schema dataclasses, tracking where values came from."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.applied: list[Override] = []

    def label(self, path: str) -> str:
        """The file, or the last applied override that set ``path`` or an ancestor."""
        label = self.source
        for override in self.applied:
            prefix = override.path
            if path == prefix or path.startswith((prefix + ".", prefix + "[")):
                label = override.label
        return label

    def where(self, *paths: str) -> str:
        labels = list(dict.fromkeys(self.label(path) for path in paths))
        return f" (in {' and '.join(labels)})"

    def apply(self, raw: dict[str, Any], override: Override) -> None:
        segments = override.path.split(".")
        node = raw
        for depth, name in enumerate(segments[:-1]):
            child = node.get(name)
            if child is None:
                child = node[name] = {}
            elif not isinstance(child, Mapping):
                path = ".".join(segments[: depth + 1])
                raise ConfigError(
                    f"{path} must be a mapping to apply --set {override.text}, got "
                    f"{show(child)}{self.where(path)}; make it a mapping or remove it"
                )
            elif not isinstance(child, dict):
                child = node[name] = dict(child)
            node = child
        node[segments[-1]] = override.value
        self.applied.append(override)

    def section(self, cls: type, data: Any, path: str) -> Any:
        if data is None:
            data = {}
        names = field_names(cls)
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{path} must be a mapping of {path} keys ({', '.join(names)}), "
                f"got {show(data)}{self.where(path)}"
            )
        for key in data:
            if key not in names:
                full = join_path(path, str(key))
                raise unknown_key(cls, path, str(key), self.label(full))
        hints = type_hints(cls)
        kwargs = {}
        for field in dataclasses.fields(cls):
            key_path = join_path(path, field.name)
            if field.name in data:
                value = self.convert(hints[field.name], data[field.name], key_path)
                self.check_constraints(value, key_path, field.metadata)
                kwargs[field.name] = value
            elif field.default is dataclasses.MISSING and (
                field.default_factory is dataclasses.MISSING
            ):
                raise ConfigError(
                    f"{key_path} is required but missing{self.where(key_path)}; "
                    f"add it as {describe_type(hints[field.name])}"
                )
        return cls(**kwargs)

    def convert(self, hint: Any, value: Any, path: str, expected: str | None = None) -> Any:
        expected = expected or describe_type(hint)
        if hint is Any:
            return copy.deepcopy(value)
        if is_section(hint):
            return self.section(hint, value, path)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            others = [arg for arg in args if arg is not type(None)]
            if len(others) != 1:
                raise TypeError(f"unsupported config type {hint!r} at {path}")
            if value is None and len(others) < len(args):
                return None
            return self.convert(others[0], value, path, expected)
        if origin is tuple:
            return self.convert_tuple(args, value, path, expected)
        if origin is dict:
            return self.convert_dict(value, path, expected)
        if hint is bool:
            if isinstance(value, bool):
                return value
            raise self.type_error(path, expected, value)
        if hint is int:
            return self.convert_int(value, path, expected)
        if hint is float:
            return self.convert_float(value, path, expected)
        if hint is str:
            if isinstance(value, str):
                return value
            fix = "; put it in quotes to make it a string" if is_scalar(value) else ""
            raise self.type_error(path, expected, value, fix)
        raise TypeError(f"unsupported config type {hint!r} at {path}")

    def convert_int(self, value: Any, path: str, expected: str) -> int:
        if isinstance(value, bool):
            raise self.type_error(path, expected, value)
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            number = float(value)
            if math.isfinite(number) and number.is_integer():
                return int(number)
        elif isinstance(value, str):
            # Exact decimal parsing: "1e5" and "100_000" are integers, "1.5" is not.
            try:
                number = decimal.Decimal(value)
            except (decimal.InvalidOperation, ValueError):
                pass
            else:
                if number.is_finite() and number == number.to_integral_value():
                    return int(number)
        raise self.type_error(path, expected, value)

    def convert_float(self, value: Any, path: str, expected: str) -> float:
        if isinstance(value, bool):
            raise self.type_error(path, expected, value)
        if isinstance(value, numbers.Real):
            number = float(value)
        elif isinstance(value, str):
            # PyYAML resolves `1e-3` to a string (YAML 1.1 needs `1.0e-3`).
            try:
                number = float(value)
            except ValueError:
                raise self.type_error(path, expected, value) from None
        else:
            raise self.type_error(path, expected, value)
        if not math.isfinite(number):
            raise ConfigError(
                f"{path} must be a finite number, got {show(value)}{self.where(path)}"
            )
        return number

    def convert_tuple(self, args: tuple[Any, ...], value: Any, path: str, expected: str) -> tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported config type tuple{list(args)!r} at {path}")
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            fix = f"; write a list, e.g. [{json.dumps(value)}]" if is_scalar(value) else ""
            raise self.type_error(path, expected, value, fix)
        return tuple(self.convert(args[0], item, f"{path}[{i}]") for i, item in enumerate(value))

    def convert_dict(self, value: Any, path: str, expected: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.type_error(path, expected, value, "; write e.g. {key: value}")
        for key in value:
            if not isinstance(key, str):
                raise ConfigError(
                    f"{path} keys must be strings, got {show(key)}{self.where(path)}; quote the key"
                )
        return copy.deepcopy(dict(value))

    def check_constraints(self, value: Any, path: str, metadata: Mapping[str, Any]) -> None:
        if value is None:
            return
        choices = metadata.get("choices")
        if choices is not None and value not in choices:
            allowed = ", ".join(repr(choice) for choice in choices)
            message = f"{path} must be one of {allowed}, got {show(value)}{self.where(path)}"
            close = difflib.get_close_matches(str(value).lower(), choices, n=1)
            raise ConfigError(f"{message}; did you mean {close[0]!r}?" if close else message)
        self.check_bounds(value, path, metadata)
        min_item = metadata.get("min_item")
        if min_item is not None:
            if not value:
                raise ConfigError(
                    f"{path} must be a non-empty list, got []{self.where(path)}; "
                    "write e.g. [64, 64]"
                )
            for i, item in enumerate(value):
                self.check_bounds(item, f"{path}[{i}]", {"min": min_item})

    def check_bounds(self, value: Any, path: str, metadata: Mapping[str, Any]) -> None:
        bounds = [(key, symbol, metadata[key]) for key, symbol in _BOUND_SYMBOLS if key in metadata]
        if not bounds:
            return
        ok = {
            "min": lambda bound: value >= bound,
            "gt": lambda bound: value > bound,
            "max": lambda bound: value <= bound,
            "lt": lambda bound: value < bound,
        }
        if all(ok[key](bound) for key, _, bound in bounds):
            return
        rule = " and ".join(f"{symbol} {format_number(bound)}" for _, symbol, bound in bounds)
        raise ConfigError(f"{path} must be {rule}, got {value!r}{self.where(path)}")

    def type_error(self, path: str, expected: str, value: Any, fix: str = "") -> ConfigError:
        return ConfigError(f"{path} must be {expected}, got {show(value)}{self.where(path)}{fix}")


def check_cross_fields(config: ExperimentConfig, converter: Converter) -> None:
    steps = config.trainer.steps_per_iteration
    n_envs = config.env.n_envs
    if steps % n_envs:
        lower = steps // n_envs * n_envs
        upper = lower + n_envs
        nearest = upper if lower == 0 or upper - steps < steps - lower else lower
        where = converter.where("trainer.steps_per_iteration", "env.n_envs")
        raise ConfigError(
            f"trainer.steps_per_iteration must be divisible by env.n_envs, got {steps} and "
            f"{n_envs}{where}; set trainer.steps_per_iteration to {nearest} "
            f"(the nearest multiple of {n_envs}) or change env.n_envs"
        )
    total = config.trainer.total_steps
    if total < steps:
        where = converter.where("trainer.total_steps", "trainer.steps_per_iteration")
        raise ConfigError(
            f"trainer.total_steps must be >= trainer.steps_per_iteration (training runs whole "
            f"iterations), got {total} < {steps}{where}; raise trainer.total_steps to at "
            f"least {steps} or lower trainer.steps_per_iteration"
        )
    minibatch = config.value.minibatch_size
    if minibatch > steps:
        where = converter.where("value.minibatch_size", "trainer.steps_per_iteration")
        raise ConfigError(
            f"value.minibatch_size must be <= trainer.steps_per_iteration, got {minibatch} > "
            f"{steps}{where}; lower value.minibatch_size or raise trainer.steps_per_iteration"
        )
