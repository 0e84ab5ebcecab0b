"""docs/plugins.md says what the code does: calls, messages and public names it quotes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import trpo_tf.interfaces
from trpo_tf import registry
from trpo_tf.config.build import check_kwargs
from trpo_tf.errors import ConfigError

GUIDE = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()


def _table_row(group: str) -> str:
    (row,) = [line for line in GUIDE.splitlines() if line.startswith(f"| `{group}`")]
    return row


def test_every_group_and_its_factory_call_is_listed() -> None:
    for group in registry.GROUPS:
        assert f"``{group}``: ``factory(" in trpo_tf.interfaces.__doc__, group
        assert "factory(" in _table_row(group), group
    # trpo_tf passes these by keyword (tracking/factory.py): the guide must say so.
    assert "factory(run_dir=..., experiment=..." in _table_row(registry.TRACKERS)
    assert "run_dir=Path, experiment=dict" in trpo_tf.interfaces.__doc__
    assert "factory(*, run_dir: pathlib.Path, experiment: dict, **kwargs)" in GUIDE


def test_the_quoted_unknown_keyword_message_is_what_the_code_prints() -> None:
    quoted = re.search(r"\n +(unknown key 'policy\.distribution_kwargs\.[^\n]*)\n", GUIDE)
    assert quoted, "the guide quotes the unknown-keyword message"

    def make_fixed_std_gaussian(action_space, std=0.5):  # the guide's example factory
        raise AssertionError("not called")

    with pytest.raises(ConfigError) as info:
        check_kwargs(
            make_fixed_std_gaussian,
            {"sdt": 0.3},
            "policy.distribution_kwargs",
            "distribution 'fixed_std_gaussian'",
            positional=1,
        )
    assert str(info.value) == quoted.group(1)


def test_public_names_the_guide_uses_are_documented_and_importable() -> None:
    assert "from trpo_tf.advantages import GeneralizedAdvantageEstimator" in GUIDE
    from trpo_tf.advantages import GeneralizedAdvantageEstimator  # noqa: F401

    for constant in ("DISTRIBUTIONS", "ADVANTAGES", "ENVS", "TRACKERS"):
        assert f"`{constant}`" in GUIDE, constant
        assert getattr(registry, constant) in GUIDE
