"""Raw YAML data -> the frozen schema dataclasses, with key-path errors."""

from __future__ import annotations

import copy
import dataclasses
import decimal
import difflib
import json
import math
import numbers
import os
import struct
import types
import typing
from collections.abc import Mapping
from typing import Any

from trpo_tf.config.overrides import Override
from trpo_tf.config.schema import INT32_MAX, MAX_NAME_BYTES
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

FLOAT32_MAX = 3.4028234663852886e38


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
                self.check_constraints(value, key_path, _limits(hints[field.name], field.metadata))
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
        if metadata.get("path_component"):
            self.check_path_component(value, path)
        self.check_bounds(value, path, metadata)
        if metadata.get("float32"):
            self.check_float32(value, path, metadata)
        if "min_item" in metadata or "max_item" in metadata:
            self.check_items(value, path, metadata)

    def check_items(self, value: tuple, path: str, metadata: Mapping[str, Any]) -> None:
        if not value:
            raise ConfigError(
                f"{path} must be a non-empty list, got []{self.where(path)}; write e.g. [64, 64]"
            )
        max_items = metadata.get("max_items")
        if max_items is not None and len(value) > max_items:
            raise ConfigError(
                f"{path} must have at most {max_items} items, got {len(value):,d}"
                f"{self.where(path)}; use fewer layers"
            )
        bounds = {key: metadata[key] for key in ("min_item", "max_item") if key in metadata}
        item_bounds = {
            "min" if key == "min_item" else "max": bound for key, bound in bounds.items()
        }
        for i, item in enumerate(value):
            self.check_bounds(item, f"{path}[{i}]", item_bounds)

    def check_bounds(self, value: Any, path: str, metadata: Mapping[str, Any]) -> None:
        rule = _broken_rule(value, metadata)
        if rule:
            raise ConfigError(
                f"{path} must be {rule}, got {_shown_number(value)}{self.where(path)}"
            )

    def check_float32(self, value: float, path: str, metadata: Mapping[str, Any]) -> None:
        """The bounds hold for ``value`` rounded to the float32 it is used as."""
        if abs(value) > FLOAT32_MAX:
            raise ConfigError(
                f"{path} must be at most {FLOAT32_MAX:.8g} in magnitude (it is used as a "
                f"float32), got {value!r}{self.where(path)}"
            )
        rounded = struct.unpack("f", struct.pack("f", value))[0]
        rule = _broken_rule(rounded, metadata)
        if rule:
            raise ConfigError(
                f"{path} must be {rule} as a float32 (the type it is used as), got {value!r}, "
                f"which rounds to {rounded!r}{self.where(path)}"
            )

    def check_path_component(self, value: str, path: str) -> None:
        """``value`` names a directory: one printable path component, not too long."""
        separators = sorted({"/", "\\", os.sep, os.altsep or "/"} & set(value))
        problem = ""
        if value in ("", ".", ".."):
            problem = f"{value!r} is not a directory name"
        elif separators:
            problem = f"it contains {' and '.join(map(repr, separators))}"
        elif not value.isprintable():
            problem = "it contains a control character"
        elif len(value.encode("utf-8")) > MAX_NAME_BYTES:
            problem = f"it is {len(value.encode('utf-8')):,d} bytes long (at most {MAX_NAME_BYTES})"
        if problem:
            raise ConfigError(
                f"{path} must be a single path component (it names the run directory), got "
                f"{show(value)}{self.where(path)}: {problem}; choose a plain name like "
                "'cartpole' and pass --run-dir to choose where the run goes"
            )

    def type_error(self, path: str, expected: str, value: Any, fix: str = "") -> ConfigError:
        return ConfigError(f"{path} must be {expected}, got {show(value)}{self.where(path)}{fix}")


def _limits(hint: Any, metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """``metadata``, plus ``implicit_max`` :data:`INT32_MAX` for an unbounded integer field."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    is_int = hint is int or (union and int in typing.get_args(hint))
    if is_int and "max" not in metadata and "lt" not in metadata:
        return {**metadata, "implicit_max": INT32_MAX}
    return metadata


def _broken_rule(value: Any, metadata: Mapping[str, Any]) -> str:
    """``">= 1 and <= 1024"`` when ``value`` breaks one of those bounds, else ``""``.

    An ``implicit_max`` (not stated in the schema) is named only when it is broken.
    """
    implicit = metadata.get("implicit_max")
    if implicit is not None and value > implicit:
        return f"<= {implicit}"
    bounds = [(key, symbol, metadata[key]) for key, symbol in _BOUND_SYMBOLS if key in metadata]
    ok = {
        "min": lambda bound: value >= bound,
        "gt": lambda bound: value > bound,
        "max": lambda bound: value <= bound,
        "lt": lambda bound: value < bound,
    }
    if all(ok[key](bound) for key, _, bound in bounds):
        return ""
    return " and ".join(f"{symbol} {format_number(bound)}" for _, symbol, bound in bounds)


def _shown_number(value: Any) -> str:
    """``repr`` of a number, an integer of more than 30 digits as ``~1.0e+400``."""
    if isinstance(value, int) and abs(value) >= 10**30:
        digits = len(str(abs(value)))
        return f"{'-' if value < 0 else ''}~{str(abs(value))[0]}e+{digits - 1}"
    return repr(value)
