"""Load, validate and dump YAML experiments.

An experiment file maps one-to-one onto the frozen dataclasses of
:mod:`trpo_tf.config.schema`. Loading goes in three steps:

1. the file is read like :func:`yaml.safe_load` (an empty file means all defaults),
   except that anchors, aliases and duplicate keys are refused
   (:mod:`trpo_tf.config.yaml_input`),
2. ``--set key.path=value`` overrides are applied to the raw mapping, each value
   parsed the same way (``policy.hidden=[128,128]``, ``env.normalize_obs=true``),
3. the mapping is converted field by field, driven by :func:`dataclasses.fields`
   and :func:`typing.get_type_hints`, then checked against the range constraints in
   the field metadata and a few cross-field rules.

Overrides live in :mod:`trpo_tf.config.overrides`, the conversion in
:mod:`trpo_tf.config.convert`, schema introspection in :mod:`trpo_tf.config.schema_info`.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from trpo_tf.config.convert import Converter
from trpo_tf.config.cross_checks import check_cross_fields
from trpo_tf.config.overrides import parse_override, parse_overrides, yaml_problem
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.config.schema_info import field_names, is_scalar, show
from trpo_tf.config.yaml_input import RefusedYaml, load_yaml
from trpo_tf.errors import ConfigError

__all__ = [
    "dump_experiment",
    "experiment_from_dict",
    "load_experiment",
    "parse_overrides",
    "to_dict",
]


# --------------------------------------------------------------------------- public API


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Reads an experiment YAML file, applies overrides and validates the result.

    Args:
        path: The experiment file. An empty file yields the default experiment.
        overrides: ``--set`` style strings ``"key.path=value"``, applied in order;
            each value is parsed as YAML, like the file.

    Returns:
        The fully resolved, validated experiment.

    Raises:
        ConfigError: The file is missing, larger than :data:`MAX_FILE_BYTES` or not
            valid YAML, uses anchors, aliases or a key twice, an override is malformed
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
    parsed = [parse_override(text) for text in overrides]
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: the top level must be a mapping of experiment keys "
            f"({', '.join(field_names(ExperimentConfig))}), got {show(data)}"
        )
    converter = Converter(source)
    raw = copy.deepcopy(dict(data))
    for override in parsed:
        converter.apply(raw, override)
    config = converter.section(ExperimentConfig, raw, "")
    check_cross_fields(config, converter)
    return config


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


MAX_FILE_BYTES = 1 << 20
"""Largest experiment file read (an experiment is a few hundred bytes)."""


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size if path.is_file() else 0
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                f"{path}: {size:,d} bytes is too large for an experiment file (at most "
                f"{MAX_FILE_BYTES:,d}); check that it is the right file"
            )
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
        data = load_yaml(text)
    except RefusedYaml as exc:
        raise ConfigError(exc.located(str(path))) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{path}: invalid YAML{_yaml_error_location(exc)}: {yaml_problem(exc)}; "
            "check indentation, brackets and quoting there"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: the top level must be a mapping of experiment keys "
            f"({', '.join(field_names(ExperimentConfig))}), got {show(data)}"
        )
    return dict(data)


def _yaml_error_location(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return ""
    return f" at line {mark.line + 1}, column {mark.column + 1}"


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
    inline = all(value is None or is_scalar(value) for value in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=inline)


_ExperimentDumper.add_representer(list, _represent_list)
