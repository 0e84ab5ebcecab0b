"""Plug-in keyword arguments from the config: unknown keys name the key path."""

from __future__ import annotations

import gymnasium as gym
import pytest

from trpo_tf.config.build import build_distribution, build_estimator, check_kwargs
from trpo_tf.config.schema import AdvantageConfig, PolicyConfig
from trpo_tf.errors import ConfigError

BOX = gym.spaces.Box(-1.0, 1.0, (2,))


def test_misspelt_distribution_kwarg_names_the_key_and_the_closest_one():
    config = PolicyConfig(distribution="diag_gaussian", distribution_kwargs={"log_std_int": -1})
    with pytest.raises(ConfigError) as caught:
        build_distribution(config, BOX)
    message = str(caught.value)
    assert message.startswith("unknown key 'policy.distribution_kwargs.log_std_int'"), message
    assert "did you mean 'log_std_init'?" in message
    assert "action_space" not in message  # passed by the builder, not a config key
    assert "\n" not in message


def test_valid_distribution_kwargs_still_build():
    config = PolicyConfig(distribution="diag_gaussian", distribution_kwargs={"log_std_init": -1})
    assert build_distribution(config, BOX).action_shape == (2,)
    assert build_estimator(AdvantageConfig()) is not None


def test_check_kwargs_skips_factories_taking_var_keywords():
    def factory(action_space, **kwargs):
        return None

    check_kwargs(factory, {"anything": 1}, "policy.distribution_kwargs", "d", positional=1)


def test_check_kwargs_without_a_close_match_lists_the_accepted_keywords():
    def factory(gamma, lam, clip=1.0):
        return None

    with pytest.raises(ConfigError, match=r"'advantage.kwargs.zzz'.*\(it accepts clip\)$"):
        check_kwargs(factory, {"zzz": 1}, "advantage.kwargs", "e", reserved=("gamma", "lam"))


def test_unknown_kwarg_without_a_close_match_has_no_stray_separator():
    def factory(action_space, init_log_scale=0.0):
        return None

    with pytest.raises(ConfigError) as caught:
        check_kwargs(factory, {"init_std": 1}, "policy.distribution_kwargs", "d", positional=1)
    assert str(caught.value) == (
        "unknown key 'policy.distribution_kwargs.init_std': d takes no keyword 'init_std' "
        "(it accepts init_log_scale)"
    )


def test_check_kwargs_suggests_for_tracker_factories():
    """The check a tracker plug-in's kwargs get: run_dir and experiment are trpo_tf's own."""
    from trpo_tf.config.contracts import check_kwargs as contracts_check_kwargs

    assert contracts_check_kwargs is check_kwargs  # one implementation, TensorFlow-free

    def factory(*, run_dir, experiment, uri="file:./mlruns", run_name=None):
        return None

    with pytest.raises(ConfigError) as caught:
        check_kwargs(
            factory,
            {"url": "x"},
            "tracking.plugins.mlflow",
            "tracker 'mlflow'",
            reserved=("run_dir", "experiment"),
        )
    assert str(caught.value) == (
        "unknown key 'tracking.plugins.mlflow.url': tracker 'mlflow' takes no keyword 'url'; "
        "did you mean 'uri'? (it accepts uri, run_name)"
    )
