"""What the config schema looks like: field names, type hints, key paths, error text.

Shared by the override parser and the converter of :mod:`trpo_tf.config.loader`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from typing import Any

from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.errors import ConfigError

MAX_SHOWN_CHARS = 60


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


@functools.cache
def schema_paths(cls: type = ExperimentConfig, prefix: str = "") -> tuple[str, ...]:
    """Every key path of the schema (sections and leaves, not keys inside dict fields)."""
    paths: list[str] = []
    for name, hint in type_hints(cls).items():
        path = join_path(prefix, name)
        paths.append(path)
        if is_section(hint):
            paths.extend(schema_paths(hint, path))
    return tuple(paths)


def unknown_key(cls: type, parent: str, key: str, label: str) -> ConfigError:
    names = field_names(cls)
    full = join_path(parent, key)
    message = f"unknown key {full!r} in {label}"
    close = difflib.get_close_matches(key.lower(), names, n=1)
    if close:
        return ConfigError(f"{message}; did you mean {join_path(parent, close[0])!r}?")
    # A known key put in the wrong section, e.g. a top-level `max_kl:`.
    elsewhere = [path for path in schema_paths() if path.rsplit(".", 1)[-1] == key.lower()]
    if elsewhere:
        return ConfigError(f"{message}; did you mean {' or '.join(map(repr, elsewhere))}?")
    scope = f"under {parent!r}" if parent else "at the top level"
    return ConfigError(f"{message}; valid keys {scope}: {', '.join(names)}")


def is_section(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def describe_type(hint: Any) -> str:
    """A phrase for error messages: ``must be <phrase>``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        others = [arg for arg in args if arg is not type(None)]
        return " or ".join(describe_type(arg) for arg in others) + " or null"
    if origin is tuple:
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        return f"a list of {plural.get(args[0], 'values')}"
    if origin is dict or is_section(hint):
        return "a mapping"
    simple = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return simple.get(hint, str(hint))


def show(value: Any) -> str:
    """``<yaml type> <value>`` for error messages, shortened to one short line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"bool {str(value).lower()}"
    text = repr(value)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[: MAX_SHOWN_CHARS - 3] + "..."
    return f"{type(value).__name__} {text}"


def brief(text: str, limit: int = 80) -> str:
    """``repr(text)``, shortened to about ``limit`` characters with ``...``."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def format_number(number: float) -> str:
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return repr(number)


def join_path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key
