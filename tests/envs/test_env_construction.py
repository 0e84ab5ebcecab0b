"""Making an env: one-line errors for every way it fails, suggestions, time limits."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

from trpo_tf import registry
from trpo_tf.envs import make_env_fn
from trpo_tf.envs.factory import MAKE_KEYWORDS
from trpo_tf.errors import ConfigError


def error_of(env_id, kwargs=None, max_episode_steps=None, build=True) -> str:
    """The one-line ConfigError of making ``env_id`` (eagerly, then by calling the thunk)."""
    with pytest.raises(ConfigError) as info:
        env_fn = make_env_fn(env_id, kwargs, max_episode_steps)
        if build:
            env_fn().close()
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 600, message
    return message


def episode_length(env: gym.Env, limit: int = 10_000) -> tuple[int, bool]:
    """Steps until the first episode ends, and whether it was truncated."""
    env.reset(seed=0)
    env.action_space.seed(0)
    for step in range(1, limit + 1):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            return step, bool(truncated)
    return limit, False


class EndlessEnv(gym.Env):
    """An env that never ends an episode by itself (as plug-in envs may)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, size: int = 2, noise: float = 0.0):
        self.size = size

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


def make_failing_env(size: int = 2):
    raise ValueError(f"size must be even,\n  got {size}")


def make_config_error_env():
    raise ConfigError("env.kwargs.size: the plug-in's own one-line message")


def make_missing_package_env():
    import a_package_that_is_not_installed  # noqa: F401

    return EndlessEnv()


@pytest.fixture
def plugin_envs(monkeypatch):
    """``endless``, ``failing``, ``own_error`` and ``needs_package`` as trpo_tf.envs plug-ins."""
    factories = {
        "endless": EndlessEnv,
        "failing": make_failing_env,
        "own_error": make_config_error_env,
        "needs_package": make_missing_package_env,
    }
    real_has, real_load = registry.has, registry.load

    def has(group, name):
        return (group == registry.ENVS and name in factories) or real_has(group, name)

    def load(group, name):
        if group == registry.ENVS and name in factories:
            return factories[name]
        return real_load(group, name)

    monkeypatch.setattr(registry, "has", has)
    monkeypatch.setattr(registry, "load", load)


# --------------------------------------------------------------------------- gymnasium ids


def test_negative_max_episode_steps_in_kwargs_is_one_line_naming_env_kwargs():
    message = error_of("CartPole-v1", {"max_episode_steps": -3})
    assert message == (
        "env.kwargs: environment 'CartPole-v1' could not be made with {'max_episode_steps': -3}: "
        "ValueError: Expect the `max_episode_steps` to be positive, actually: -3; "
        "fix or remove those env.kwargs"
    )


def test_unknown_kwarg_of_a_gymnasium_env_suggests_the_closest():
    message = error_of("CartPole-v1", {"render_mod": "rgb_array"}, build=False)
    assert message.startswith(
        "unknown key 'env.kwargs.render_mod': environment 'CartPole-v1' takes no keyword "
        "'render_mod'; did you mean 'render_mode'? (it accepts sutton_barto_reward, render_mode"
    )
    for keyword in MAKE_KEYWORDS:  # gymnasium.make's own keywords are accepted too
        assert keyword in message
    close = error_of("Pendulum-v1", {"gravity": 9.0}, build=False)
    assert "takes no keyword 'gravity' (it accepts render_mode, g, max_episode_steps" in close


def test_known_kwargs_of_a_gymnasium_env_pass():
    env = make_env_fn("Pendulum-v1", {"g": 3.0, "disable_env_checker": True})()
    assert env.unwrapped.g == 3.0
    env.close()


@pytest.mark.parametrize(
    "env_id, module",
    [("phys2d/CartPole-v1", "jax"), ("GymV26Environment-v0", "shimmy")],
)
def test_env_that_needs_a_missing_package_is_one_line(env_id, module):
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    message = error_of(env_id)
    assert message.startswith(
        f"env.id: environment '{env_id}' needs a package that is not installed ("
    )
    assert message.endswith("); install it, or choose another env.id")


def test_huge_kwargs_are_shortened_in_the_message():
    nested = [["lol"] * 9] * 9
    for _ in range(6):
        nested = [nested] * 9  # 9**8 strings if printed in full
    message = error_of("CartPole-v1", {"max_episode_steps": -3, "x": nested}, build=False)
    assert message.startswith("unknown key 'env.kwargs.x'")
    message = error_of("CartPole-v1", {"max_episode_steps": -3, "sutton_barto_reward": nested})
    assert "could not be made with {'max_episode_steps': -3, 'sutton_barto_reward': [[" in message


def test_unknown_id_is_shortened():
    message = error_of("x" * 10_000, build=False)
    assert message.startswith("env.id: unknown environment 'xxxx") and "..." in message


def test_max_episode_steps_replaces_a_gymnasium_ids_registered_limit():
    assert episode_length(make_env_fn("Pendulum-v1")()) == (200, True)
    assert episode_length(make_env_fn("Pendulum-v1", max_episode_steps=50)()) == (50, True)
    assert episode_length(make_env_fn("Pendulum-v1", max_episode_steps=300)()) == (300, True)


# --------------------------------------------------------------------------- plug-in envs


def test_unknown_kwarg_of_a_plugin_env_suggests_the_closest(plugin_envs):
    message = error_of("endless", {"sise": 3}, build=False)
    assert message == (
        "unknown key 'env.kwargs.sise': environment 'endless' takes no keyword 'sise'; "
        "did you mean 'size'? (it accepts size, noise)"
    )


def test_plugin_constructor_errors_are_one_line(plugin_envs):
    with_kwargs = error_of("failing", {"size": 3})
    assert with_kwargs == (
        "env.kwargs: environment 'failing' could not be made with {'size': 3}: "
        "ValueError: size must be even, got 3; fix or remove those env.kwargs"
    )
    without = error_of("failing")
    assert without.startswith("env.id: environment 'failing' could not be made: ValueError: ")
    assert error_of("own_error") == "env.kwargs.size: the plug-in's own one-line message"
    assert error_of("needs_package").startswith(
        "env.id: environment 'needs_package' needs a package that is not installed "
        "(ModuleNotFoundError: No module named 'a_package_that_is_not_installed')"
    )


def test_max_episode_steps_ends_a_plugin_envs_episodes(plugin_envs):
    assert episode_length(make_env_fn("endless")(), limit=1000) == (1000, False)
    env = make_env_fn("endless", {"size": 4}, max_episode_steps=25)()
    assert episode_length(env) == (25, True)
    assert episode_length(env) == (25, True)  # again after a reset
