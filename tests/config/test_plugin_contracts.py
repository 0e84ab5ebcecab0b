"""Plug-ins that break their protocol fail up front, in one line naming the plug-in."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys

import gymnasium as gym
import numpy as np
import pytest

from trpo_tf import registry
from trpo_tf.config import experiment_from_dict
from trpo_tf.config.build import build_distribution, build_estimator
from trpo_tf.config.schema import AdvantageConfig, PolicyConfig
from trpo_tf.envs import make_env_fn, make_vector_env
from trpo_tf.errors import ConfigError, PluginError
from trpo_tf.learner import compute_advantages
from trpo_tf.tracking.factory import check_trackers
from trpo_tf.types import Rollout

FAKE_PLUGINS = """
import gymnasium as gym
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from trpo_tf.advantages.gae import GeneralizedAdvantageEstimator


class _Core:
    def _setup(self, space):
        self.num_inputs = self.param_dim = int(space.n)
        self.action_shape = ()
        self.action_dtype = tf.int32

    @property
    def trainable_variables(self):
        return ()

    def params(self, net_out):
        return net_out

    def distribution(self, params):
        return tfp.distributions.Categorical(logits=params)

    def to_env_action(self, actions):
        return np.asarray(actions)


class _Mode:
    def mode(self, params):
        return tf.argmax(params, -1, output_type=tf.int32)


class _Diagnostics:
    def diagnostics(self, params):
        return {}


class _Module(tf.Module):
    def __init__(self, space):
        super().__init__(name="fake_head")
        self._setup(space)


class Good(_Core, _Mode, _Diagnostics, _Module):
    pass


class NoDiagnostics(_Core, _Mode, _Module):
    pass


class NoModeNoDiagnostics(_Core, _Module):
    pass


class Plain(_Core, _Mode, _Diagnostics):
    def __init__(self, space):
        self._setup(space)


def make_good(action_space):
    return Good(action_space)


def make_no_diagnostics(action_space):
    return NoDiagnostics(action_space)


def make_no_mode(action_space):
    return NoModeNoDiagnostics(action_space)


def make_plain(action_space):
    return Plain(action_space)


def make_tuple(gamma, lam):
    gae = GeneralizedAdvantageEstimator(gamma=gamma, lam=lam)

    def estimator(inputs):
        out = gae(inputs)
        return out.advantages, out.value_targets

    return estimator


def make_not_callable(gamma, lam):
    return {"gamma": gamma}


def make_no_gamma(c_bar=1.0):
    return GeneralizedAdvantageEstimator(gamma=0.99, lam=0.95)


_THE_ENV = None


def make_same_env():
    global _THE_ENV
    if _THE_ENV is None:
        _THE_ENV = gym.make("CartPole-v1")
    return _THE_ENV


def make_fresh_env():
    return gym.make("CartPole-v1")


class _Tracker:
    def log(self, row, step):
        pass

    def finish(self, summary, run_dir):
        pass


def make_tracker_no_run_dir(uri="x"):
    return _Tracker()
"""

ENTRY_POINTS = {
    registry.DISTRIBUTIONS: {
        "fake_good": "make_good",
        "fake_no_diagnostics": "make_no_diagnostics",
        "fake_no_mode": "make_no_mode",
        "fake_plain": "make_plain",
    },
    registry.ADVANTAGES: {
        "fake_tuple": "make_tuple",
        "fake_not_callable": "make_not_callable",
        "fake_no_gamma": "make_no_gamma",
    },
    registry.ENVS: {"fake_same": "make_same_env", "fake_fresh": "make_fresh_env"},
    registry.TRACKERS: {"fake_no_run_dir": "make_tracker_no_run_dir"},
}

DISCRETE = gym.spaces.Discrete(3)


@pytest.fixture(autouse=True)
def fake_plugins(tmp_path, monkeypatch):
    """Package ``trpo-tf-fake`` 0.1.0 registering ``fake_contract_plugins`` in every group.

    A real ``*.dist-info`` directory, so its entry points carry the package name.
    """
    code = tmp_path / "code"
    code.mkdir()
    (code / "fake_contract_plugins.py").write_text(FAKE_PLUGINS)
    info_dir = tmp_path / "trpo_tf_fake-0.1.0.dist-info"
    info_dir.mkdir()
    (info_dir / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: trpo-tf-fake\nVersion: 0.1.0\n"
    )
    (info_dir / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n"
            + "".join(
                f"{name} = fake_contract_plugins:{target}\n" for name, target in names.items()
            )
            for group, names in ENTRY_POINTS.items()
        )
    )
    extra = list(importlib.metadata.PathDistribution(info_dir).entry_points)
    monkeypatch.syspath_prepend(str(code))
    importlib.invalidate_caches()
    real = registry._entry_points

    def entry_points(group: str):
        return list(real(group)) + [ep for ep in extra if ep.group == group]

    monkeypatch.setattr(registry, "_entry_points", entry_points)
    registry.clear_cache()
    yield
    registry.clear_cache()
    sys.modules.pop("fake_contract_plugins", None)


def _one_line(caught: pytest.ExceptionInfo) -> str:
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_complete_tf_module_head_builds():
    head = build_distribution(PolicyConfig(distribution="fake_good"), DISCRETE)
    assert head.param_dim == 3


def test_head_without_diagnostics_is_named_with_its_package_and_entry_point():
    with pytest.raises(PluginError) as caught:
        build_distribution(PolicyConfig(distribution="fake_no_diagnostics"), DISCRETE)
    message = _one_line(caught)
    assert message.startswith("policy.distribution: distribution 'fake_no_diagnostics' ")
    assert "package trpo-tf-fake 0.1.0" in message
    assert "fake_contract_plugins:make_no_diagnostics" in message
    assert "lacks diagnostics() of the DistributionHead protocol" in message


def test_head_without_mode_lists_every_missing_method():
    with pytest.raises(PluginError) as caught:
        build_distribution(PolicyConfig(distribution="fake_no_mode"), DISCRETE)
    assert "lacks mode(), diagnostics() of" in _one_line(caught)


def test_head_that_is_not_a_tf_module_is_told_to_become_one():
    with pytest.raises(PluginError) as caught:
        build_distribution(PolicyConfig(distribution="fake_plain"), DISCRETE)
    message = _one_line(caught)
    assert "returned Plain, which is not a tf.Module; make it a tf.Module" in message
    assert "lacks" not in message


def test_bad_head_stops_train_before_the_run_directory_exists(tmp_path):
    from trpo_tf.train import train

    config = experiment_from_dict(
        {
            "name": "bad-head",
            "env": {"id": "CartPole-v1", "n_envs": 2},
            "policy": {"distribution": "fake_plain", "hidden": [8]},
            "trainer": {"total_steps": 128, "steps_per_iteration": 64},
        }
    )
    with pytest.raises(PluginError, match="not a tf.Module"):
        train(config, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


def _rollout(T: int = 4, N: int = 2) -> Rollout:
    zeros = np.zeros((T, N), np.float32)
    return Rollout(
        observations=np.zeros((T, N, 1), np.float32),
        actions=np.zeros((T, N), np.int32),
        rewards=np.ones((T, N), np.float32),
        raw_rewards=np.ones((T, N), np.float32),
        terminated=zeros.astype(bool),
        truncated=zeros.astype(bool),
        final_observations=np.zeros((T, N, 1), np.float32),
        last_observations=np.zeros((N, 1), np.float32),
        behavior_log_prob=zeros,
        behavior_params=np.zeros((T, N, 3), np.float32),
        policy_version=np.ones((T, N), np.int64),
        episode_returns=np.zeros(0),
        episode_lengths=np.zeros(0, np.int64),
    )


def test_estimator_returning_a_tuple_is_named_with_its_package_at_the_call_site():
    estimator = build_estimator(AdvantageConfig(estimator="fake_tuple"))
    value_fn = lambda x: np.zeros(len(x))  # noqa: E731
    with pytest.raises(PluginError) as caught:
        compute_advantages(_rollout(), value_fn, estimator, estimator_name="fake_tuple")
    assert _one_line(caught) == (
        "advantage.estimator: advantage estimator 'fake_tuple' (package trpo-tf-fake 0.1.0, "
        "entry point fake_contract_plugins:make_tuple) breaks the AdvantageEstimator contract: "
        "estimator(inputs) returned tuple, expected "
        "trpo_tf.interfaces.AdvantageOutputs(advantages=..., value_targets=...)"
    )


def test_unguarded_estimator_returning_a_tuple_is_still_named_by_the_learner():
    from fake_contract_plugins import make_tuple

    value_fn = lambda x: np.zeros(len(x))  # noqa: E731
    with pytest.raises(PluginError) as caught:
        compute_advantages(_rollout(), value_fn, make_tuple(0.99, 0.95), estimator_name="t")
    assert _one_line(caught).startswith("advantage.estimator: estimator 't' returned tuple")


def test_estimator_factory_returning_a_non_callable_fails_when_built():
    with pytest.raises(PluginError) as caught:
        build_estimator(AdvantageConfig(estimator="fake_not_callable"))
    message = _one_line(caught)
    assert "estimator 'fake_not_callable' (package trpo-tf-fake 0.1.0" in message
    assert "returned dict, which is not callable" in message


def test_estimator_factory_without_gamma_blames_its_signature_not_the_yaml():
    with pytest.raises(PluginError) as caught:
        build_estimator(AdvantageConfig(estimator="fake_no_gamma"))
    message = _one_line(caught)
    assert message.startswith("advantage.estimator: advantage estimator 'fake_no_gamma' (")
    assert "entry point fake_contract_plugins:make_no_gamma" in message
    assert "the factory must accept the keyword(s) gamma, lam" in message
    assert message.endswith("add gamma, lam to make_no_gamma's signature")
    assert "advantage.kwargs" not in message


def test_tracker_factory_without_run_dir_blames_its_signature():
    config = experiment_from_dict({"name": "t", "tracking": {"plugins": {"fake_no_run_dir": {}}}})
    with pytest.raises(PluginError) as caught:
        check_trackers(config)
    message = _one_line(caught)
    assert message.startswith("tracking.plugins.fake_no_run_dir: tracker 'fake_no_run_dir'")
    assert "must accept the keyword(s) run_dir, experiment" in message
    assert "add run_dir, experiment to make_tracker_no_run_dir's signature" in message


def test_env_factory_returning_one_instance_for_every_slot_is_refused():
    env_fn = make_env_fn("fake_same")
    with pytest.raises(ConfigError) as caught:
        make_vector_env(env_fn, 2, "sync", "fake_same")
    message = _one_line(caught)
    assert message.startswith("env.id: the factory of environment 'fake_same' returned the same")
    assert "must return a new environment each call" in message


def test_env_factory_returning_fresh_instances_builds_a_vector_env():
    envs = make_vector_env(make_env_fn("fake_fresh"), 2, "sync", "fake_fresh")
    try:
        assert envs.num_envs == 2
    finally:
        envs.close()


# --- the pre-check (trpo_tf/plugin_checks.py) ------------------------------------


def _install_example(tmp_path, monkeypatch, directory):
    """``plugins/<directory>`` on sys.path with a dist-info built from its pyproject.toml."""
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[2] / "plugins" / directory
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    site = tmp_path / f"site-{directory}"
    info_dir = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info_dir.mkdir(parents=True)
    (info_dir / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    (info_dir / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in names.items())
            for group, names in project["entry-points"].items()
        )
    )
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    registry.clear_cache()


def test_the_example_plugins_pass_the_pre_check(tmp_path, monkeypatch):
    from trpo_tf.plugin_checks import check_plugins

    for directory in ("trpo-tf-gridworld", "trpo-tf-squashed", "trpo-tf-vtrace"):
        _install_example(tmp_path, monkeypatch, directory)
    gridworld = experiment_from_dict(
        {"name": "g", "env": {"id": "gridworld", "kwargs": {"size": 5}, "n_envs": 4}}
    )
    squashed = experiment_from_dict(
        {
            "name": "s",
            "env": {"id": "Pendulum-v1", "n_envs": 2},
            "policy": {"distribution": "squashed_gaussian"},
            "advantage": {"estimator": "vtrace"},
        }
    )
    for config in (gridworld, squashed):
        assert check_plugins(config).total > 0


def test_a_head_is_guarded_without_changing_its_class_or_checkpoint(tmp_path):
    import tensorflow as tf

    from trpo_tf.distributions import make_diag_gaussian

    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    guarded = build_distribution(PolicyConfig(distribution="diag_gaussian"), space)
    plain = make_diag_gaussian(space)
    assert type(guarded) is type(plain)
    assert getattr(guarded.params, "plugin_guard", False)
    assert not hasattr(type(guarded).params, "plugin_guard")

    def saved(head, name):
        path = tf.train.Checkpoint(policy_head=head).write(str(tmp_path / name))
        return tf.train.list_variables(path)

    assert saved(guarded, "guarded") == saved(plain, "plain")


def test_what_a_guarded_head_raises_later_names_the_plugin(monkeypatch):
    head = build_distribution(PolicyConfig(distribution="fake_good"), DISCRETE)
    line = (
        "policy.distribution: distribution 'fake_good' (package trpo-tf-fake 0.1.0, entry point "
        "fake_contract_plugins:make_good) raised in distribution(params): TypeError: Argument "
        "`logits` must having floating type."
    )
    with pytest.raises(PluginError) as caught:
        head.distribution("not logits")
    assert _one_line(caught) == f"{line} (--debug or TRPO_TF_DEBUG=1 shows the traceback)"
    assert isinstance(caught.value.__cause__, TypeError)

    monkeypatch.setenv("TRPO_TF_DEBUG", "1")
    with pytest.raises(PluginError) as caught:
        head.distribution("not logits")
    first, second, *rest = str(caught.value).splitlines()
    assert first == line
    assert second == "Traceback (most recent call last):"
    assert any("fake_contract_plugins.py" in text for text in rest)
    assert rest[-1].startswith("TypeError: Argument `logits`")


def test_diagnostics_keys_are_checked_at_every_call(monkeypatch):
    import fake_contract_plugins

    head = build_distribution(PolicyConfig(distribution="fake_good"), DISCRETE)
    assert head.diagnostics(None) == {}
    monkeypatch.setattr(
        fake_contract_plugins.Good, "diagnostics", lambda self, params: {"entropy_bonus": 1.0}
    )
    head = build_distribution(PolicyConfig(distribution="fake_good"), DISCRETE)
    with pytest.raises(PluginError, match=r"returned the key\(s\) 'entropy_bonus', which are not"):
        head.diagnostics(None)
