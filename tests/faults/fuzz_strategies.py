"""Hypothesis strategies for experiment files and ``--set`` overrides, valid and hostile.

Key paths come from the schema itself (every leaf of
:class:`~trpo_tf.config.schema.ExperimentConfig`, walked with :mod:`dataclasses`),
so new keys are fuzzed as soon as they exist. Values are YAML *text*: what a
user can type, including what no Python value dumps to (``1e400``, ``0x10``,
``!!python/object``, ``&a``/``*a``, a 5,000-digit integer).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

import yaml
from hypothesis import strategies as st

from trpo_tf.config.schema import INT32_MAX, ExperimentConfig

# --------------------------------------------------------------------------- the schema


@dataclasses.dataclass(frozen=True)
class Leaf:
    path: str
    hint: Any
    metadata: dict[str, Any]


def _leaves(cls: type, prefix: str = "") -> list[Leaf]:
    found: list[Leaf] = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        path = f"{prefix}{field.name}"
        hint = hints[field.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            found.extend(_leaves(hint, path + "."))
        else:
            found.append(Leaf(path, hint, dict(field.metadata)))
    return found


LEAVES = _leaves(ExperimentConfig)
LEAF_PATHS = [leaf.path for leaf in LEAVES]
SECTIONS = sorted({path.rsplit(".", 1)[0] for path in LEAF_PATHS if "." in path})
MAPPING_LEAVES = [leaf.path for leaf in LEAVES if typing.get_origin(leaf.hint) is dict]


# --------------------------------------------------------------------------- YAML text of values


def flow(value: Any) -> str:
    """``value`` as one line of YAML flow text."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, allow_unicode=True)
    return text.removesuffix("\n...\n").removesuffix("\n").replace("\n", " ")


EXTREME_TEXTS = [
    "1e400",  # PyYAML: a str (no dot)
    "1.0e+400",  # a float: inf
    "-1.0e+400",
    "-0.0",
    ".nan",
    ".NaN",
    ".inf",
    "-.inf",
    "1e-50",
    "1.0e-50",
    "3.5e+38",  # beyond float32
    "1.7976931348623157e+308",
    "5e-324",
    str(2**31),
    str(2**32),
    str(2**63),
    str(2**64),
    str(-(2**63)),
    str(10**30),
    "9" * 5000,  # past Python's int conversion limit
    "0x7fffffffffffffff",
    "0o777",
    "0b1010",
    "1_000_000",
    "1:30",  # YAML 1.1 sexagesimal: 90
    "1e5",
    "1E-3",
    "+1",
    "-1",
    "0",
    "yes",
    "off",
    "~",
    "null",
    "''",
    '""',
    "2001-12-14",
    "2001-12-14T21:59:43.10-05:00",
    '"\\x00"',
    '"\\ud800"',  # a lone surrogate, escaped
    '"\\U0001F600"',
    '"line\\nbreak"',
    '"\\u2028"',
    "'" + "x" * 10_000 + "'",
    "[" + ", ".join(["1"] * 20_000) + "]",
    "[" * 60 + "]" * 60,
    "{a: " * 60 + "1" + "}" * 60,
    "[[[[[[[[[[1]]]]]]]]]]",
    "{}",
    "[]",
    "[1, [2, [3]]]",
    "{a: 1, a: 2}",
    "&a 1",
    "*a",
    "[&a 1, *a]",
    "!!python/object:os.system {}",
    "!!python/object/apply:os.system ['true']",
    "!!python/name:os.getpid",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!str 5",
    "!!int '12'",
    "!!float '1'",
    "!!bool yes",
    "!!timestamp 2001-12-14",
    "!custom 1",
    "[",
    "{",
    "'unterminated",
    "a: b: c",
    "- 1",
    "? a",
    "| literal",
    "# only a comment",
    "@reserved",
    "`backtick",
    "%directive",
    "tanh",
    "auto",
    "gae",
    "sync",
    "async",
    "ray",
    "CartPole-v1",
    "Pendulum-v1",
    "NoSuchEnv-v0",
]
"""Values as YAML text: extreme numbers, wrong types, syntax oddities, plausible words."""

printable = st.characters(exclude_categories=("Cs", "Cc"))
"""Characters a YAML file may hold as they are (control characters get a few tries of
their own: YAML refuses most of them, one line naming the position)."""
texts = st.one_of(
    st.text(printable, max_size=30), st.text(printable, max_size=30), st.text(max_size=8)
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
python_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)


def _number_in(metadata: dict[str, Any], integral: bool, in_range: bool) -> st.SearchStrategy:
    low = metadata.get("min", metadata.get("gt", 0))
    high = metadata.get("max", metadata.get("lt", INT32_MAX if integral else 1e6))
    if integral:
        inner = st.integers(int(low), int(min(high, low + 4096)))
        edges = [low, high, low - 1, high + 1, low + 1]
    else:
        inner = st.floats(
            low,
            min(high, 1e6),
            exclude_min="gt" in metadata,
            exclude_max="lt" in metadata,
            allow_nan=False,
        )
        edges = [low, high, -low, high * 2, high + 1e-9, low + 1e-9]
    return inner if in_range else st.one_of(inner, inner, st.sampled_from(edges))


def plausible(leaf: Leaf, in_range: bool = False) -> st.SearchStrategy:
    """Values of the leaf's own type: with ``in_range`` within its bounds, else mostly
    within, some on or just past a bound."""
    hint, metadata = leaf.hint, leaf.metadata
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(arg for arg in args if arg is not type(None))
    if "choices" in metadata:
        strategy = st.sampled_from(metadata["choices"])
    elif hint is bool:
        strategy = st.booleans()
    elif hint is int:
        strategy = _number_in(metadata, integral=True, in_range=in_range)
    elif hint is float:
        strategy = _number_in(metadata, integral=False, in_range=in_range)
    elif typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        items = st.integers(1, 64) if item is int else texts
        strategy = st.lists(items, max_size=4)
    elif typing.get_origin(hint) is dict:
        strategy = st.dictionaries(texts, scalars, max_size=3)
    elif leaf.path == "env.id":
        strategy = st.sampled_from(["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "NoSuchEnv-v0"])
    else:
        strategy = texts
    return st.one_of(st.none(), strategy) if optional else strategy


value_texts_for = {leaf.path: plausible(leaf).map(flow) for leaf in LEAVES}
in_range_texts_for = {leaf.path: plausible(leaf, in_range=True).map(flow) for leaf in LEAVES}
hostile_value_texts = st.one_of(
    st.sampled_from(EXTREME_TEXTS),
    python_values.map(flow),
    texts.map(flow),
    texts,  # raw, unquoted: whatever YAML makes of it
)


# --------------------------------------------------------------------------- key paths


def _typo(path: str, data: st.DataObject) -> str:
    kind = data.draw(st.sampled_from(["drop", "insert", "swap", "upper", "join", "move", "plural"]))
    i = data.draw(st.integers(0, max(len(path) - 1, 0)))
    if kind == "drop":
        return path[:i] + path[i + 1 :]
    if kind == "insert":
        return path[:i] + data.draw(st.sampled_from("xe_.-Ü1 ")) + path[i:]
    if kind == "swap" and len(path) > 1:
        i = min(i, len(path) - 2)
        return path[:i] + path[i + 1] + path[i] + path[i + 2 :]
    if kind == "upper":
        return path.upper()
    if kind == "join":
        return path.replace(".", "_")
    if kind == "move":  # a key in the wrong section, or at the top level
        leaf = path.rsplit(".", 1)[-1]
        return data.draw(st.sampled_from(["", *[s + "." for s in SECTIONS]])) + leaf
    return path + "s"


@st.composite
def key_paths(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["leaf"] * 6 + ["typo"] * 2 + ["section", "mapping", "random"]))
    if kind == "leaf":
        return draw(st.sampled_from(LEAF_PATHS))
    if kind == "typo":
        return _typo(draw(st.sampled_from(LEAF_PATHS)), draw(st.data()))
    if kind == "section":
        return draw(st.sampled_from(SECTIONS))
    if kind == "mapping":
        return draw(st.sampled_from(MAPPING_LEAVES)) + "." + draw(texts.filter(bool))
    segments = draw(st.lists(texts, min_size=1, max_size=4))
    return ".".join(segments)


@st.composite
def in_range_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """``(key path, YAML value text)`` of a real key and a value of its type within range
    (which may still break a cross-key rule, or the memory estimate)."""
    path = draw(st.sampled_from(LEAF_PATHS))
    return path, draw(in_range_texts_for[path])


@st.composite
def pairs(draw: st.DrawFn) -> tuple[str, str]:
    """``(key path, YAML value text)``; plausible for the key two times in three."""
    path = draw(key_paths())
    if path in value_texts_for and draw(st.integers(0, 2)):
        return path, draw(value_texts_for[path])
    return path, draw(hostile_value_texts)


# --------------------------------------------------------------------------- documents


def _key(segment: str) -> str:
    return flow(segment)


def render(entries: list[tuple[str, str]]) -> str:
    """Block YAML of ``key.path: value`` entries, shared prefixes merged into one mapping.

    A later entry replaces an earlier one at the same path, and a section given
    a value gives up its keys (no duplicate keys unless a document adds them itself).
    """
    tree: dict[str, Any] = {}
    for path, text in entries:
        node = tree
        *parents, leaf = path.split(".")
        for segment in parents:
            child = node.get(segment)
            if not isinstance(child, dict):
                child = node[segment] = {}
            node = child
        node[leaf] = text

    def lines(node: dict[str, Any], indent: int) -> list[str]:
        out: list[str] = []
        for key, value in node.items():
            if isinstance(value, dict):
                out.append(" " * indent + f"{_key(key)}:")
                out.extend(lines(value, indent + 2))
            else:
                out.append(" " * indent + f"{_key(key)}: {value}")
        return out

    return "\n".join(lines(tree, 0)) + "\n"


DOCUMENT_ODDITIES: list[str | bytes] = [
    "",
    "\n",
    "---\n",
    "...\n",
    "# a comment only\n",
    "~\n",
    "null\n",
    "- a\n- b\n",
    "[seed, 1]\n",
    "42\n",
    "'just a string'\n",
    "!!python/object/apply:os.system ['true']\n",
    "seed: !!python/name:os.getpid\n",
    "env: !!python/object:collections.OrderedDict {}\n",
    "!!map {seed: 1}\n",
    "seed: 1\n---\nseed: 2\n",
    "env: &e {n_envs: 2}\npolicy: *e\n",
    "<<: {seed: 1}\n",
    "trainer:\n  <<: {max_kl: 0.02}\n",
    "seed: 1\nseed: 2\n",
    "trainer:\n  max_kl: 0.01\n  max_kl: 5.0\n",
    "trainer: {max_kl: 0.01}\ntrainer: {cg_iters: 5}\n",
    "a:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(60)) + "  " * 61 + "x: 1\n",
    "seed: " + "[" * 100 + "]" * 100 + "\n",
    "\ufeffseed: 1\n",
    "trainer:\n\tmax_kl: 0.1\n",
    b"seed: \xff\xfe\n",
    b"name: \xe2\x82\n",
    "seed: 1\x00\n",
    "seed: 1\r\ntrainer:\r\n  max_kl: 0.02\r\n",
    "seed: 1\u2028trainer: {}\n",
    "seed: 1\x85name: x\n",
    "trainér:\n  max_kl: 1\n",
    "名前: 実験\n",
    "name: 実験\n",
    'name: "a/b"\n',
    "name: ..\n",
    'name: "\\x00"\n',
    "? [a, b]\n: 1\n",
    "1: 2\n",
    "null: x\n",
    "true: false\n",
    "seed: 1\n  bad_indent: 2\n",
    "seed: [1, 2\n",
    "env: {id: CartPole-v1, kwargs: {render_mode: human}}\n",
    "env:\n  kwargs: !!python/object/new:object []\n",
    "policy:\n  hidden: [" + ", ".join(["64"] * 100) + "]\n",
    "policy:\n  hidden: [16384, 16384, 16384, 16384, 16384, 16384]\n",
    "trainer:\n  steps_per_iteration: 16777216\n  total_steps: 1000000000000000\n",
    "# " + "x" * (1 << 20) + "\n",
    "seed: " + "1" * 2000 + "\n",
    "x" * 20_000 + ": 1\n",
]
"""Whole documents: empty ones, other top levels, tags, aliases, duplicates, depth, encodings."""


@st.composite
def documents(draw: st.DrawFn) -> str | bytes:
    """An experiment file's content: real keys with values in range, generated keys and
    values of every kind, or an oddity, a third each."""
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return render(draw(st.lists(in_range_pairs(), max_size=12)))
    if kind == 1:
        text = render(draw(st.lists(pairs(), max_size=draw(st.sampled_from([2, 4, 8])))))
        if draw(st.integers(0, 7)) == 0:  # an oddity appended to an otherwise plain file
            oddity = draw(st.sampled_from([d for d in DOCUMENT_ODDITIES if isinstance(d, str)]))
            text += oddity
        return text
    return draw(st.sampled_from(DOCUMENT_ODDITIES))


@st.composite
def override_texts(draw: st.DrawFn) -> str:
    """A ``--set`` argument: ``key.path=value`` mostly, some without ``=`` or malformed."""
    kinds = ["in_range"] * 3 + ["pair"] * 6 + ["no_equals", "malformed", "random"]
    kind = draw(st.sampled_from(kinds))
    if kind == "in_range":
        path, text = draw(in_range_pairs())
        return f"{path}={text}"
    if kind == "pair":
        path, text = draw(pairs())
        return f"{path}={text}"
    if kind == "no_equals":
        return draw(key_paths())
    if kind == "malformed":
        return draw(
            st.sampled_from(
                [
                    "=1",
                    "trainer.max_kl=",
                    "trainer.max_kl==1",
                    " trainer.max_kl = 0.02 ",
                    "trainer..max_kl=1",
                    ".seed=1",
                    "seed.=1",
                    "trainer.max_kl=1=2",
                    "trainer=max_kl=1",
                    "seed=1\nname=x",
                    "",
                    "=",
                    "env.kwargs.=1",
                    "env.kwargs..a=1",
                    "trainer.max_kl.deeper=1",
                    "seed.value=1",
                    "env.kwargs.a.b.c=1",
                ]
            )
        )
    return draw(texts)
