"""Load, validate and dump YAML experiments.

An experiment file maps one-to-one onto the frozen dataclasses of
:mod:`trpo_tf.config.schema`. Loading goes in three steps:

1. the file is read with :func:`yaml.safe_load` (an empty file means all defaults),
2. ``--set key.path=value`` overrides are applied to the raw mapping, each value
   parsed as YAML (``policy.hidden=[128,128]``, ``env.normalize_obs=true``),
3. the mapping is converted field by field, driven by :func:`dataclasses.fields`
   and :func:`typing.get_type_hints`, then checked against the range constraints in
   the field metadata and a few cross-field rules.

Every problem raises :class:`~trpo_tf.errors.ConfigError` with a one-line message
that starts with the key path (or the file) and says how to fix it, e.g.
``trainer.max_kl must be > 0, got -0.1 (in exp.yaml)``.

Conversion rules:

* ``bool`` is never accepted as a number.
* An ``int`` is accepted where a float is expected. Strings that parse as a float
  are accepted too, because PyYAML reads ``1e-3`` (no dot, no exponent sign) as a
  string.
* Where an integer is expected, a float or a string (``"1e5"``, ``"100_000"``) is
  accepted only when its value is exactly integral; ``1.5`` is rejected.
* Lists become tuples for ``tuple[...]`` fields, every element type-checked.
* An empty YAML value (``null``) for a section, a list or a mapping means "empty":
  the section's defaults, ``()`` or ``{}``.
"""

from __future__ import annotations

import copy
import dataclasses
import decimal
import difflib
import functools
import json
import math
import numbers
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.errors import ConfigError

__all__ = [
    "dump_experiment",
    "experiment_from_dict",
    "load_experiment",
    "parse_overrides",
    "to_dict",
]

_MAX_SHOWN_CHARS = 60
_BOUND_SYMBOLS = (("min", ">="), ("gt", ">"), ("max", "<="), ("lt", "<"))


# --------------------------------------------------------------------------- public API


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Reads an experiment YAML file, applies overrides and validates the result.

    Args:
        path: The experiment file. An empty file yields the default experiment.
        overrides: ``--set`` style strings ``"key.path=value"``, applied in order;
            each value is parsed with :func:`yaml.safe_load`.

    Returns:
        The fully resolved, validated experiment.

    Raises:
        ConfigError: The file is missing or not valid YAML, an override is malformed
            or names an unknown key, or a value has the wrong type or is out of range.
    """
    path = Path(path)
    data = _read_yaml_mapping(path)
    return experiment_from_dict(data, source=str(path), overrides=overrides)


def experiment_from_dict(
    data: Mapping[str, Any],
    source: str = "<dict>",
    *,
    overrides: Sequence[str] = (),
) -> ExperimentConfig:
    """Converts a plain mapping (as read from YAML) into a validated experiment.

    Args:
        data: Nested mapping whose keys are the experiment's YAML keys. Missing keys
            take their defaults. It is not modified.
        source: Where ``data`` came from, quoted in error messages (a file name).
        overrides: ``--set`` style strings ``"key.path=value"`` applied to a copy of
            ``data`` before conversion.

    Returns:
        The validated experiment.

    Raises:
        ConfigError: A key is unknown, a value has the wrong type or is out of range,
            or a cross-field rule (e.g. divisibility by ``env.n_envs``) is broken.
    """
    parsed = [_parse_override(text) for text in overrides]
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: the top level must be a mapping of experiment keys "
            f"({', '.join(_field_names(ExperimentConfig))}), got {_show(data)}"
        )
    converter = _Converter(source)
    raw = copy.deepcopy(dict(data))
    for override in parsed:
        converter.apply(raw, override)
    config = converter.section(ExperimentConfig, raw, "")
    _check_cross_fields(config, converter)
    return config


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Parses ``--set`` style overrides and checks their key paths against the schema.

    Only the key paths are validated here; the values are type- and range-checked
    when the experiment is converted.

    Args:
        overrides: Strings ``"key.path=value"``; ``value`` is parsed as YAML, so
            ``"policy.hidden=[128,128]"`` gives ``[128, 128]``. Below a mapping-typed
            field such as ``env.kwargs`` any sub-key is allowed.

    Returns:
        Key path -> parsed value, in application order. A path given twice keeps its
        last value, placed at its last position, so applying the items in order has
        the same effect as applying ``overrides`` in order.

    Raises:
        ConfigError: An override has no ``=``, names an unknown key (the message
            suggests the closest one), or its value is not valid YAML.
    """
    result: dict[str, Any] = {}
    for text in overrides:
        override = _parse_override(text)
        result.pop(override.path, None)
        result[override.path] = override.value
    return result


def to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Converts an experiment (or any of its sections) into plain YAML-ready data.

    Tuples become lists, dataclasses become dicts in field order, so
    ``experiment_from_dict(to_dict(config)) == config``.

    Args:
        config: An :class:`ExperimentConfig` or one of its section dataclasses.

    Returns:
        Nested dicts, lists and scalars that :func:`yaml.safe_dump` can write.

    Raises:
        TypeError: ``config`` is not a dataclass instance.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"to_dict expects a config dataclass instance, got {type(config)!r}")
    return _to_plain(config)


def dump_experiment(config: ExperimentConfig, path: str | Path) -> Path:
    """Writes the fully resolved experiment as YAML (a run directory's ``config.yaml``).

    Keys keep the schema's order; short lists are written inline (``[64, 64]``).
    Reading the file back with :func:`load_experiment` gives an equal config.

    Args:
        config: The experiment to write.
        path: Destination file; its parent directory must exist.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    text = yaml.dump(
        to_dict(config),
        Dumper=_ExperimentDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- reading


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"experiment file not found: {path}; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory; pass an experiment .yaml file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the experiment file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{path}: invalid YAML{_yaml_error_location(exc)}: {_yaml_problem(exc)}; "
            "check indentation, brackets and quoting there"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: the top level must be a mapping of experiment keys "
            f"({', '.join(_field_names(ExperimentConfig))}), got {_show(data)}"
        )
    return dict(data)


def _yaml_error_location(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return ""
    return f" at line {mark.line + 1}, column {mark.column + 1}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc)
    return " ".join(str(problem).split())


# --------------------------------------------------------------------------- overrides


@dataclasses.dataclass(frozen=True)
class _Override:
    path: str
    value: Any
    text: str  # the override as the user wrote it, quoted in error messages

    @property
    def label(self) -> str:
        return f"--set {self.text}"


def _parse_override(text: str) -> _Override:
    key, sep, raw_value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"override {text!r} is not of the form key.path=value; write e.g. trainer.max_kl=0.02"
        )
    segments = key.split(".")
    if not all(segments):
        raise ConfigError(
            f"{key}: empty key segment in override {text!r}; "
            "write dotted keys like trainer.max_kl=0.02"
        )
    _check_override_path(segments, f"--set {text}")
    try:
        value = yaml.safe_load(raw_value)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{key}: the value {raw_value!r} of override {text!r} is not valid YAML "
            f"({_yaml_problem(exc)}); quote it if it is meant as a string"
        ) from None
    return _Override(path=key, value=value, text=text)


def _check_override_path(segments: list[str], label: str) -> None:
    """Walks the schema along ``segments``; keys below a mapping-typed field are free."""
    cls: type = ExperimentConfig
    for depth, name in enumerate(segments):
        parent = ".".join(segments[:depth])
        if name not in _field_names(cls):
            raise _unknown_key(cls, parent, name, label)
        hint = _hints(cls)[name]
        if _is_section(hint):
            cls = hint
            continue
        if typing.get_origin(hint) is dict or depth == len(segments) - 1:
            return
        path = _join(parent, name)
        raise ConfigError(
            f"{path} is {_describe(hint)}, not a section, so {'.'.join(segments)!r} "
            f"does not exist ({label}); set {path}=... instead"
        )


# --------------------------------------------------------------------------- conversion


class _Converter:
    """Converts raw YAML data into schema dataclasses, tracking where values came from."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.applied: list[_Override] = []

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

    def apply(self, raw: dict[str, Any], override: _Override) -> None:
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
                    f"{_show(child)}{self.where(path)}; make it a mapping or remove it"
                )
            elif not isinstance(child, dict):
                child = node[name] = dict(child)
            node = child
        node[segments[-1]] = override.value
        self.applied.append(override)

    def section(self, cls: type, data: Any, path: str) -> Any:
        if data is None:
            data = {}
        names = _field_names(cls)
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{path} must be a mapping of {path} keys ({', '.join(names)}), "
                f"got {_show(data)}{self.where(path)}"
            )
        for key in data:
            if key not in names:
                full = _join(path, str(key))
                raise _unknown_key(cls, path, str(key), self.label(full))
        hints = _hints(cls)
        kwargs = {}
        for field in dataclasses.fields(cls):
            key_path = _join(path, field.name)
            if field.name in data:
                value = self.convert(hints[field.name], data[field.name], key_path)
                self.check_constraints(value, key_path, field.metadata)
                kwargs[field.name] = value
            elif field.default is dataclasses.MISSING and (
                field.default_factory is dataclasses.MISSING
            ):
                raise ConfigError(
                    f"{key_path} is required but missing{self.where(key_path)}; "
                    f"add it as {_describe(hints[field.name])}"
                )
        return cls(**kwargs)

    def convert(self, hint: Any, value: Any, path: str, expected: str | None = None) -> Any:
        expected = expected or _describe(hint)
        if hint is Any:
            return copy.deepcopy(value)
        if _is_section(hint):
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
            fix = "; put it in quotes to make it a string" if _is_scalar(value) else ""
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
                f"{path} must be a finite number, got {_show(value)}{self.where(path)}"
            )
        return number

    def convert_tuple(self, args: tuple[Any, ...], value: Any, path: str, expected: str) -> tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported config type tuple{list(args)!r} at {path}")
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            fix = f"; write a list, e.g. [{json.dumps(value)}]" if _is_scalar(value) else ""
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
                    f"{path} keys must be strings, got {_show(key)}{self.where(path)}; "
                    "quote the key"
                )
        return copy.deepcopy(dict(value))

    def check_constraints(self, value: Any, path: str, metadata: Mapping[str, Any]) -> None:
        if value is None:
            return
        choices = metadata.get("choices")
        if choices is not None and value not in choices:
            allowed = ", ".join(repr(choice) for choice in choices)
            message = f"{path} must be one of {allowed}, got {_show(value)}{self.where(path)}"
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
        rule = " and ".join(f"{symbol} {_format_number(bound)}" for _, symbol, bound in bounds)
        raise ConfigError(f"{path} must be {rule}, got {value!r}{self.where(path)}")

    def type_error(self, path: str, expected: str, value: Any, fix: str = "") -> ConfigError:
        return ConfigError(f"{path} must be {expected}, got {_show(value)}{self.where(path)}{fix}")


def _check_cross_fields(config: ExperimentConfig, converter: _Converter) -> None:
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
    minibatch = config.value.minibatch_size
    if minibatch > steps:
        where = converter.where("value.minibatch_size", "trainer.steps_per_iteration")
        raise ConfigError(
            f"value.minibatch_size must be <= trainer.steps_per_iteration, got {minibatch} > "
            f"{steps}{where}; lower value.minibatch_size or raise trainer.steps_per_iteration"
        )


# --------------------------------------------------------------------------- helpers


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


@functools.cache
def _schema_paths(cls: type = ExperimentConfig, prefix: str = "") -> tuple[str, ...]:
    """Every key path of the schema (sections and leaves, not keys inside dict fields)."""
    paths: list[str] = []
    for name, hint in _hints(cls).items():
        path = _join(prefix, name)
        paths.append(path)
        if _is_section(hint):
            paths.extend(_schema_paths(hint, path))
    return tuple(paths)


def _unknown_key(cls: type, parent: str, key: str, label: str) -> ConfigError:
    names = _field_names(cls)
    full = _join(parent, key)
    message = f"unknown key {full!r} in {label}"
    close = difflib.get_close_matches(key.lower(), names, n=1)
    if close:
        return ConfigError(f"{message}; did you mean {_join(parent, close[0])!r}?")
    # A known key put in the wrong section, e.g. a top-level `max_kl:`.
    elsewhere = [path for path in _schema_paths() if path.rsplit(".", 1)[-1] == key.lower()]
    if elsewhere:
        return ConfigError(f"{message}; did you mean {' or '.join(map(repr, elsewhere))}?")
    scope = f"under {parent!r}" if parent else "at the top level"
    return ConfigError(f"{message}; valid keys {scope}: {', '.join(names)}")


def _is_section(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _describe(hint: Any) -> str:
    """A phrase for error messages: ``must be <phrase>``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        others = [arg for arg in args if arg is not type(None)]
        return " or ".join(_describe(arg) for arg in others) + " or null"
    if origin is tuple:
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        return f"a list of {plural.get(args[0], 'values')}"
    if origin is dict or _is_section(hint):
        return "a mapping"
    simple = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return simple.get(hint, str(hint))


def _show(value: Any) -> str:
    """``<yaml type> <value>`` for error messages, shortened to one short line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"bool {str(value).lower()}"
    text = repr(value)
    if len(text) > _MAX_SHOWN_CHARS:
        text = text[: _MAX_SHOWN_CHARS - 3] + "..."
    return f"{type(value).__name__} {text}"


def _format_number(number: float) -> str:
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return repr(number)


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _to_plain(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {key: _to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(item) for item in value]
    return value


class _ExperimentDumper(yaml.SafeDumper):
    """SafeDumper that writes lists of scalars inline, as in ``hidden: [64, 64]``."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    inline = all(value is None or _is_scalar(value) for value in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=inline)


_ExperimentDumper.add_representer(list, _represent_list)
