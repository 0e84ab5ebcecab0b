"""``--set key.path=value`` overrides: parsed as YAML, key paths checked against the schema."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from typing import Any

import yaml

from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.config.schema_info import (
    brief,
    describe_type,
    field_names,
    is_section,
    join_path,
    type_hints,
    unknown_key,
)
from trpo_tf.config.yaml_input import RefusedYaml, load_yaml
from trpo_tf.errors import ConfigError


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Parses ``--set`` style overrides and checks their key paths against the schema.

    Only the key paths are validated here; the values are type- and range-checked
    when the experiment is converted.

    Args:
        overrides: Strings ``"key.path=value"``; ``value`` is parsed as YAML, so
            ``"policy.hidden=[128,128]"`` gives ``[128, 128]`` (anchors, aliases and
            duplicate keys are refused, as in files). Below a mapping-typed
            field such as ``env.kwargs`` any sub-key is allowed.

    Returns:
        Key path -> parsed value, in application order. A path given twice keeps its
        last value, placed at its last position, so applying the items in order has
        the same effect as applying ``overrides`` in order.

    Raises:
        ConfigError: An override has no ``=``, names an unknown key (the message
            suggests the closest one), or its value is not valid YAML or uses an
            anchor, alias or duplicate key.
    """
    result: dict[str, Any] = {}
    for text in overrides:
        override = parse_override(text)
        result.pop(override.path, None)
        result[override.path] = override.value
    return result


@dataclasses.dataclass(frozen=True)
class Override:
    path: str
    value: Any
    text: str  # the override as the user wrote it, quoted in error messages

    @property
    def label(self) -> str:
        return f"--set {brief(self.text)[1:-1]}"


def parse_override(text: str) -> Override:
    key, sep, raw_value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"override {brief(text)} is not of the form key.path=value; write e.g. "
            "trainer.max_kl=0.02"
        )
    segments = key.split(".")
    if not all(segments):
        raise ConfigError(
            f"{brief(key)}: empty key segment in override {brief(text)}; "
            "write dotted keys like trainer.max_kl=0.02"
        )
    check_override_path(segments, f"--set {brief(text)[1:-1]}")
    try:
        value = load_yaml(raw_value, key)
    except RefusedYaml as exc:
        source = f"{key}: the value of override {brief(text)}"
        raise ConfigError(exc.located(source, with_line="\n" in raw_value)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{key}: the value {brief(raw_value)} of override {brief(text)} is not valid YAML "
            f"({yaml_problem(exc)}); quote it if it is meant as a string"
        ) from None
    return Override(path=key, value=value, text=text)


def check_override_path(segments: list[str], label: str) -> None:
    """Walks the schema along ``segments``; keys below a mapping-typed field are free."""
    cls: type = ExperimentConfig
    for depth, name in enumerate(segments):
        parent = ".".join(segments[:depth])
        if name not in field_names(cls):
            raise unknown_key(cls, parent, name, label)
        hint = type_hints(cls)[name]
        if is_section(hint):
            cls = hint
            continue
        if typing.get_origin(hint) is dict or depth == len(segments) - 1:
            return
        path = join_path(parent, name)
        raise ConfigError(
            f"{path} is {describe_type(hint)}, not a section, so {'.'.join(segments)!r} "
            f"does not exist ({label}); set {path}=... instead"
        )


def yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc)
    return " ".join(str(problem).split())
