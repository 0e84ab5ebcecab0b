"""YAML that experiments refuse: anchors/aliases, duplicate keys, deep nesting, huge input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trpo_tf.config import load_experiment, parse_overrides
from trpo_tf.config.loader import MAX_FILE_BYTES
from trpo_tf.config.yaml_input import MAX_DEPTH, RefusedYaml, load_yaml
from trpo_tf.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

BILLION_LAUGHS = """\
name: laughs
env:
  id: CartPole-v1
  kwargs:
    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def file_error(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_experiment(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 400, message
    return message


def override_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_overrides([text])
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 400, message
    return message


def test_billion_laughs_file_is_refused_at_its_first_anchor(tmp_path):
    message = file_error(tmp_path, BILLION_LAUGHS)
    assert message.startswith(f"{tmp_path / 'exp.yaml'}: line 5: YAML anchors are not supported")
    assert "'&a'" in message and "aliases" in message


def test_alias_without_anchor_in_file_is_refused(tmp_path):
    # An alias to an unknown anchor used to be a composer error; it is named as an alias now.
    message = file_error(tmp_path, "name: x\nenv:\n  kwargs: {a: *nowhere}\n")
    assert ": line 3: YAML aliases are not supported (found '*nowhere')" in message


def test_merge_of_an_alias_is_refused(tmp_path):
    text = "env:\n  kwargs:\n    base: &base {x: 1}\n    other:\n      <<: *base\n"
    assert "line 3: YAML anchors are not supported" in file_error(tmp_path, text)


@pytest.mark.parametrize(
    "override, found",
    [
        ("env.kwargs=&a [1, 2]", "anchors are not supported (found '&a')"),
        ("env.kwargs={a: *a}", "aliases are not supported (found '*a')"),
        ("env.kwargs={a: &x [1], b: [*x, *x]}", "anchors are not supported (found '&x')"),
    ],
)
def test_anchors_and_aliases_in_overrides_are_refused(override, found):
    message = override_error(override)
    assert message.startswith(f"env.kwargs: the value of override {override!r}: YAML ")
    assert found in message
    assert "line 1" not in message  # a one-line value needs no line number


def test_duplicate_key_names_the_key_path_and_both_lines(tmp_path):
    message = file_error(tmp_path, "trainer:\n  max_kl: 0.01\n  max_kl: 5.0\n")
    assert message == (
        f"{tmp_path / 'exp.yaml'}: key 'trainer.max_kl' is given twice, at lines 2 and 3; "
        "keep one of them (YAML would silently use the last)"
    )


def test_duplicate_keys_anywhere_are_refused(tmp_path):
    top = file_error(tmp_path, "seed: 1\nname: a\nseed: 2\n")
    assert "key 'seed' is given twice, at lines 1 and 3" in top
    nested = file_error(tmp_path, "env:\n  kwargs:\n    opts: [{a: 1, b: 2, a: 3}]\n")
    assert "key 'env.kwargs.opts[0].a' is given twice, on line 3" in nested
    # Keys compare as YAML builds them: `1` and `0x1` are the same integer key.
    assert "given twice" in file_error(tmp_path, "env:\n  kwargs: {x: {1: a, 0x1: b}}\n")
    # Same name in different mappings is fine.
    path = tmp_path / "ok.yaml"
    path.write_text("env:\n  kwargs: {max_kl: 1}\ntrainer:\n  max_kl: 0.02\n")
    assert load_experiment(path).trainer.max_kl == 0.02


def test_duplicate_key_in_override_value_names_its_path():
    message = override_error("env.kwargs={a: 1, a: 2}")
    assert "key 'env.kwargs.a' is given twice, on line 1" in message


def test_deep_nesting_and_huge_integers_are_one_line(tmp_path):
    deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    assert f"nested deeper than {MAX_DEPTH} levels" in override_error(f"env.kwargs.x={deep}")
    deeper = "[" * 5000 + "]" * 5000  # recursed past Python's limit before
    assert "nested deeper" in file_error(tmp_path, f"env:\n  kwargs:\n    x: {deeper}\n")
    long_int = "9" * 5000  # past Python's int conversion limit
    message = file_error(tmp_path, f"seed: {long_int}\n")
    assert "line 1: an integer of 5,000 characters is too long" in message
    assert "integer of 5,000 characters" in override_error(f"seed={long_int}")


def test_python_tags_stay_rejected(tmp_path):
    message = file_error(tmp_path, "env:\n  kwargs: {f: !!python/name:os.system }\n")
    assert "invalid YAML at line 2" in message and "could not determine a constructor" in message
    assert "not valid YAML" in override_error("env.kwargs.f=!!python/object/apply:os.getcwd []")


def test_oversized_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "#" * MAX_FILE_BYTES + "\n")
    with pytest.raises(ConfigError, match="too large for an experiment file"):
        load_experiment(path)


@pytest.mark.parametrize("experiment", sorted((REPO / "experiments").rglob("*.yaml")))
def test_shipped_experiments_parse_as_safe_load_does(experiment):
    text = experiment.read_text(encoding="utf-8")
    assert load_yaml(text) == yaml.safe_load(text)


def test_safe_load_semantics_otherwise():
    text = "a: 1.0e-3\nb: 1e-3\nc: [1, 2]\nd: {x: null}\ne: yes\nf: 2024-01-01\ng: '&x'\n"
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml("") is None
    assert load_yaml("<<: {a: 1}\nb: 2\n") == {"a": 1, "b": 2}  # an inline merge has no alias
    with pytest.raises(RefusedYaml):
        load_yaml("a: &x 1\n")
