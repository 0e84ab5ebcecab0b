"""``trpo-tf config``: a resolved experiment as YAML, each key with its default and meaning.

The meanings are read from :mod:`trpo_tf.config.schema` itself (the docstring under a
field, else the comment above it; a section's class docstring), so the schema stays
the one place a key is described. The output is valid YAML: saved to a file it
trains the same experiment (``trpo-tf config cartpole > mine.yaml``).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
from typing import Any

import yaml

from trpo_tf.config import schema
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.config.schema_info import is_section, type_hints

_COMMENT_COLUMN = 36


def _one_line(text: str) -> str:
    """The first sentence of ``text``, on one line, without reST markup."""
    text = " ".join(text.split())
    text = text.replace("``", "`").replace(":data:", "").replace(":class:", "")
    cut = re.search(r"\.(?=\s+[A-Z(])", text)
    return text[: cut.start() + 1] if cut else text


@functools.cache
def meanings() -> dict[str, str]:
    """Key path -> one-line meaning, for every key ``schema.py`` describes.

    Sections (``env``, ``tracking.wandb``) get their class docstring without the
    ``env:`` prefix; leaves the docstring under the field, else the ``#`` comment
    lines right above it.
    """
    source = inspect.getsource(schema)
    tree = ast.parse(source)
    lines = source.splitlines()
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    by_class: dict[str, dict[str, str]] = {}
    for name, node in classes.items():
        docs: dict[str, str] = {}
        body = node.body
        for index, statement in enumerate(body):
            if not isinstance(statement, ast.AnnAssign) or not isinstance(
                statement.target, ast.Name
            ):
                continue
            following = body[index + 1] if index + 1 < len(body) else None
            text = ""
            if (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                text = following.value.value
            else:
                comment: list[str] = []
                row = statement.lineno - 2
                while row >= 0 and lines[row].strip().startswith("#"):
                    comment.insert(0, lines[row].strip().lstrip("#").strip())
                    row -= 1
                text = " ".join(comment)
            if text:
                docs[statement.target.id] = _one_line(text)
        doc = ast.get_docstring(node) or ""
        docs["__section__"] = _one_line(re.sub(r"^``[\w.]+:``\s*[—-]\s*", "", doc))
        by_class[name] = docs

    out: dict[str, str] = {}

    def walk(cls: type, prefix: str) -> None:
        docs = by_class.get(cls.__name__, {})
        for field in dataclasses.fields(cls):
            path = f"{prefix}{field.name}"
            hint = type_hints(cls)[field.name]
            if is_section(hint):
                section = by_class.get(hint.__name__, {}).get("__section__", "")
                if section:
                    out[path] = section
                walk(hint, path + ".")
            elif field.name in docs:
                out[path] = docs[field.name]

    walk(ExperimentConfig, "")
    return out


def _scalar(value: Any) -> str:
    """``value`` as inline YAML (``[64, 64]``, ``{}``, ``null``, ``1.0e-3`` stays a float)."""
    plain = list(value) if isinstance(value, tuple) else value
    text = yaml.safe_dump(plain, default_flow_style=True, width=10**9, allow_unicode=True)
    text = text.strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _defaults(cls: type) -> Any:
    return cls()


def render(config: ExperimentConfig, source: str = "") -> str:
    """The resolved experiment as commented YAML: ``key: value  # meaning (default: X)``."""
    docs = meanings()
    lines = [
        f"# {config.name}: the resolved experiment{f' ({source})' if source else ''}.",
        "# After each key: what it means (from trpo_tf/config/schema.py) and its default;",
        "# '<- changed' marks a value the experiment or --set changed.",
    ]

    def emit(obj: Any, default: Any, prefix: str, depth: int) -> None:
        for field in dataclasses.fields(obj):
            value, base = getattr(obj, field.name), getattr(default, field.name)
            path = f"{prefix}{field.name}"
            indent = "  " * depth
            meaning = docs.get(path, "")
            if dataclasses.is_dataclass(value):
                head = f"{indent}{field.name}:"
                lines.append(f"{head.ljust(_COMMENT_COLUMN)}  # {meaning}" if meaning else head)
                emit(value, base, path + ".", depth + 1)
                continue
            head = f"{indent}{field.name}: {_scalar(value)}"
            note = f"default: {_scalar(base)}"
            if value != base:
                note += " <- changed"
            comment = f"{meaning} ({note})" if meaning else f"({note})"
            lines.append(f"{head.ljust(_COMMENT_COLUMN)}  # {comment}")

    emit(config, _defaults(ExperimentConfig), "", 0)
    return "\n".join(lines) + "\n"


def undocumented() -> list[str]:
    """Leaf key paths ``schema.py`` gives no meaning for (sections excluded)."""
    docs = meanings()
    missing = []

    def walk(cls: type, prefix: str) -> None:
        for field in dataclasses.fields(cls):
            hint = type_hints(cls)[field.name]
            if is_section(hint):
                walk(hint, f"{prefix}{field.name}.")
            elif f"{prefix}{field.name}" not in docs:
                missing.append(f"{prefix}{field.name}")

    walk(ExperimentConfig, "")
    return missing
