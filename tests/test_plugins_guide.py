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


def _quoted_line(prefix: str) -> str:
    """The line the guide quotes (indented as code) that starts with ``prefix``."""
    (line,) = [text.strip() for text in GUIDE.splitlines() if text.strip().startswith(prefix)]
    return line


def test_the_quoted_plugin_raised_line_is_what_the_code_prints(monkeypatch) -> None:
    from trpo_tf import plugin_errors

    quoted = _quoted_line("policy.distribution: distribution 'NAME' (package PKG VERSION")
    monkeypatch.delenv(plugin_errors.DEBUG_VARIABLE, raising=False)
    monkeypatch.setattr(
        plugin_errors,
        "describe_plugin",
        lambda group, name: f"distribution '{name}' (package PKG VERSION, entry point module:attr)",
    )
    error = plugin_errors.plugin_raised(
        "policy.distribution",
        registry.DISTRIBUTIONS,
        "NAME",
        "params(net_out)",
        ValueError("message"),
    )
    assert str(error) == quoted


def test_every_call_a_message_can_name_is_listed() -> None:
    from trpo_tf.plugin_errors import HEAD_CALLS

    for call in HEAD_CALLS.values():
        if call != "to_env_action_graph(actions)":  # only exports call it; named in its section
            assert f"`{call}`" in GUIDE, call
    for call in ("factory(gamma, lam, **advantage.kwargs)", "estimator(inputs)", "step(action)"):
        assert f"`{call}`" in GUIDE, call


def test_numpy_sampler_arguments_and_debugging_are_documented() -> None:
    import inspect

    from trpo_tf.rollout import numpy_actor

    assert "`rng` a `numpy.random.Generator`" in GUIDE
    assert "np.random.default_rng(seed)" in inspect.getsource(numpy_actor.NumpyActor)
    assert "trpo-tf train --debug" in GUIDE and "TRPO_TF_DEBUG=1" in GUIDE


def test_env_max_episode_steps_is_documented_as_the_schema_has_it() -> None:
    from trpo_tf.config.schema import EnvConfig

    assert EnvConfig().max_episode_steps is None
    assert "`env.max_episode_steps: N`" in GUIDE and "TimeLimit(env, max_episode_steps=N)" in GUIDE


def test_the_env_kwargs_wording_is_what_make_env_fn_prints() -> None:
    from trpo_tf.envs import make_env_fn

    assert "`env.kwargs: environment 'ID' could not be made with {...}: ...`" in GUIDE
    with pytest.raises(ConfigError) as info:
        make_env_fn("FrozenLake-v1", {"map_name": "9x9"})()
    assert str(info.value).startswith(
        "env.kwargs: environment 'FrozenLake-v1' could not be made with {'map_name': '9x9'}: "
    )
