"""YAML as experiments accept it: ``yaml.safe_load`` minus what a config never needs.

:class:`ExperimentLoader` is a :class:`yaml.SafeLoader` (plain data only; ``!!python``
tags stay unknown) that additionally refuses

* anchors and aliases (``&a``, ``*a``, merges of aliases): a few hundred bytes of
  nested aliases ("billion laughs") expand to gigabytes once copied, printed in an
  error message or written to a run directory's ``config.yaml``;
* a key given twice in one mapping: plain YAML keeps the last one without a word,
  so ``max_kl: 0.01`` followed by ``max_kl: 5.0`` would train with 5.0;
* nesting deeper than :data:`MAX_DEPTH` levels and integers longer than Python
  converts, which would otherwise end in a traceback instead of a message.

Each refusal raises :class:`RefusedYaml`, a :class:`yaml.MarkedYAMLError` whose
``problem`` says what is wrong and ``fix`` what to write instead.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 50
"""Deepest nesting of mappings and lists accepted (an experiment needs about five)."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class RefusedYaml(yaml.MarkedYAMLError):
    """Valid YAML that experiment files and ``--set`` values do not accept.

    Attributes:
        problem: what was found, e.g. ``YAML aliases are not supported (found '*a')``.
        fix: how to write it instead.
        line: 1-based line of the offending text.
    """

    def __init__(self, problem: str, fix: str, mark: yaml.Mark, names_lines: bool = False) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.fix = fix
        self.line = mark.line + 1
        self.names_lines = names_lines

    def located(self, source: str, with_line: bool = True) -> str:
        """``"SOURCE: line N: PROBLEM; FIX"``; no ``line N`` when the problem names lines."""
        line = f" line {self.line}:" if with_line and not self.names_lines else ""
        return f"{source}:{line} {self.problem}; {self.fix}"


class ExperimentLoader(yaml.SafeLoader):
    """SafeLoader without anchors, aliases or deep nesting (see the module docstring)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise RefusedYaml(
                f"YAML aliases are not supported (found '*{_short(event.anchor)}'); "
                "neither are anchors",
                "write the value out in full where it is used",
                event.start_mark,
            )
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise RefusedYaml(
                f"YAML anchors are not supported (found '&{_short(event.anchor)}'); "
                "neither are aliases",
                "remove the anchor and write each value out in full",
                event.start_mark,
            )
        if self._depth >= MAX_DEPTH:
            raise RefusedYaml(
                f"values nested deeper than {MAX_DEPTH} levels are not supported",
                "flatten the structure",
                event.start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # longer than sys.get_int_max_str_digits()
            raise RefusedYaml(
                f"an integer of {len(node.value):,d} characters is too long",
                "write a shorter number",
                node.start_mark,
            ) from None


ExperimentLoader.add_constructor("tag:yaml.org,2002:int", ExperimentLoader.construct_yaml_int)


def _short(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else name[: limit - 3] + "..."


def load_yaml(text: str, path: str = "") -> Any:
    """Parses one YAML document like :func:`yaml.safe_load`, with the refusals above.

    Args:
        text: the document.
        path: the key path the document sits at, for messages about duplicate keys
            (``"env.kwargs"`` for ``--set env.kwargs={...}``; empty for a whole file).

    Returns:
        Plain data: dicts, lists, strings, numbers, booleans, None (and the other
        types ``yaml.safe_load`` builds, e.g. dates).

    Raises:
        RefusedYaml: an anchor, alias, duplicate key, too deep nesting or too long
            integer.
        yaml.YAMLError: the text is not valid YAML, or names a tag safe_load rejects.
    """
    loader = ExperimentLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_unique_keys(loader, node, path)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_unique_keys(loader: ExperimentLoader, node: yaml.Node, path: str) -> None:
    """Raises :class:`RefusedYaml` for a key given twice in one mapping below ``node``."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_unique_keys(loader, item, f"{path}[{i}]")
        return
    if not isinstance(node, yaml.MappingNode):
        return
    first_line: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            _check_unique_keys(loader, value_node, path)
            continue
        # Compared as constructed, so `1` and `0x1`, or `yes` and `true`, are one key.
        key = loader.construct_object(key_node, deep=True)
        key_path = f"{path}.{key}" if path else str(key)
        line = key_node.start_mark.line + 1
        if key in first_line:
            earlier = first_line[key]
            where = f"on line {line}" if earlier == line else f"at lines {earlier} and {line}"
            raise RefusedYaml(
                f"key '{key_path}' is given twice, {where}",
                "keep one of them (YAML would silently use the last)",
                key_node.start_mark,
                names_lines=True,
            )
        first_line[key] = line
        _check_unique_keys(loader, value_node, key_path)
