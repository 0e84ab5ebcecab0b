"""The pre-check: every plug-in of a run runs once on dummy data before the run starts.

:func:`check_plugins` is called by :func:`trpo_tf.train.train` before the run
directory is created or anything is built. It drives each plug-in the way training
will, on a few inputs, and stops a broken one with one
:class:`~trpo_tf.errors.PluginError` line naming the plug-in, its package and entry
point, the call and what was wrong (:mod:`trpo_tf.plugin_errors`):

* environment (``env.id``): made as training makes it and reset with the run's seed;
  a ``trpo_tf.envs`` plug-in is made twice (each call must return a new object), both
  are reset and stepped once with the head's actions, and ``reset``/``step`` must
  return what gymnasium specifies (a reward that is an int or float,
  ``terminated``/``truncated`` bools, observations that flatten to the observation
  space's width). :func:`check_env` is this part without stepping, and without
  TensorFlow, for callers that check before TensorFlow is imported;
* distribution head (``policy.distribution``, ``auto`` resolved): built with the env's
  action space and fed network outputs derived from those real observations
  (:mod:`trpo_tf.plugin_head_checks`): shapes and dtypes of ``params``, ``sample``,
  ``log_prob``, ``entropy``, KL and ``mode``; ``diagnostics`` keys; ``to_env_action``
  lands in the action space and leaves its input alone; the numpy sampler (when
  offered) returns the same params and log-probabilities as
  ``distribution(params).log_prob`` (a twin that disagrees would train with a wrong β
  in the importance ratio); ``params`` and ``diagnostics`` trace without autograph;
* networks (``policy.network``, ``value.network``): built for the env's own
  observation space and run on those real observations (``[B, observation_dim]``
  float32, as training stores them): the output must be ``[B, output_width]``
  float32 and finite (:func:`check_networks`);
* advantage estimator (``advantage.estimator``): called on a dummy rollout of
  ``[T, n_envs]`` arrays; returns :class:`~trpo_tf.interfaces.AdvantageOutputs` of
  that shape, finite, without modifying its inputs.

Built-in plug-ins go through the same checks. The conformance kit
(:mod:`trpo_tf.testing`) checks much more (gradients, XLA, Monte-Carlo agreement,
export) and belongs in the plug-in's own tests; this is the part every run can
afford (docs/plugins.md gives the measured cost).

Importing this module does not import TensorFlow; :func:`check_plugins` does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf import registry
from trpo_tf.config.contracts import describe_plugin
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.envs import make_env_fn
from trpo_tf.errors import ConfigError, TrpoTfError
from trpo_tf.interfaces import AdvantageInputs
from trpo_tf.plugin_errors import ESTIMATOR_KEY, one_line, plugin_broke, plugin_raised
from trpo_tf.rollout.env_checks import env_raised, is_number

BATCH = 7
"""Rows of network output the head is checked on (odd, so it rarely equals a width)."""

MAX_ROLLOUT_T = 16
"""Time steps of the estimator's dummy rollout (at most; ``n_envs`` columns)."""

ENV_KEY = "env.id"


@dataclass
class PluginCheckTimes:
    """Seconds :func:`check_plugins` spent per part (for docs/plugins.md's measurements)."""

    env: float = 0.0
    head: float = 0.0
    estimator: float = 0.0
    network: float = 0.0

    @property
    def total(self) -> float:
        return self.env + self.head + self.estimator + self.network


def check_plugins(config: ExperimentConfig) -> PluginCheckTimes:
    """Run the experiment's env, distribution head and estimator once on dummy data.

    TensorFlow's process settings (threads, GPU memory growth) are applied first,
    as the run would apply them: they can only be set before TensorFlow runs an op.

    Args:
        config: the resolved experiment.

    Returns:
        How long each part took.

    Raises:
        PluginError: a plug-in raised, or returned something its protocol does not
            allow; one line naming the plug-in, its package, entry point and the call.
        ConfigError, RegistryError, IncompatibleSpaceError, EnvRuntimeError: what
            building the run would raise (an unknown name, bad kwargs, an action
            space the head does not support, a gymnasium env that fails to reset).
    """
    from trpo_tf.config.build import build_distribution
    from trpo_tf.plugin_head_checks import check_head
    from trpo_tf.tf_runtime import configure_tensorflow

    configure_tensorflow(config.trainer.threads, config.trainer.graph_optimizer)
    times = PluginCheckTimes()
    start = time.perf_counter()
    with _probe_envs(config) as probe:
        times.env = time.perf_counter() - start
        start = time.perf_counter()
        head = build_distribution(config.policy, probe.action_space)
        name = _head_name(config, probe.action_space)
        env_actions = check_head(head, name, probe.observations, probe.action_space, config.seed)
        times.head = time.perf_counter() - start
        start = time.perf_counter()
        check_networks(config, head, probe.observations, probe.env_observation_space)
        times.network = time.perf_counter() - start
        start = time.perf_counter()
        probe.step(env_actions)
        times.env += time.perf_counter() - start
    start = time.perf_counter()
    check_estimator(config)
    times.estimator = time.perf_counter() - start
    return times


def check_env(config: ExperimentConfig) -> None:
    """The environment part of the pre-check, without stepping and without TensorFlow.

    For a ``trpo_tf.envs`` plug-in: the factory called twice as training calls it
    (two new ``gymnasium.Env`` objects), each reset with the run's seed, observations
    that flatten to the observation space. Nothing for a gymnasium id.

    Raises:
        PluginError: naming the env plug-in, its package, entry point and the call.
        ConfigError: ``env.kwargs`` has a key the factory does not take.
    """
    if not registry.has(registry.ENVS, config.env.id):
        return
    with _probe_envs(config):
        pass


def _head_name(config: ExperimentConfig, action_space: gym.Space) -> str:
    name = config.policy.distribution
    if name == "auto":
        from trpo_tf.distributions.auto import auto_distribution_name

        name = auto_distribution_name(action_space)
    return name


# -- environment ---------------------------------------------------------------------------


class _EnvProbe:
    """The env(s) of the pre-check: made, reset, stepped once, closed."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.env_id = config.env.id
        self.kwargs = dict(config.env.kwargs)
        self.seed = config.seed
        self.plugin = registry.has(registry.ENVS, self.env_id)
        self.envs: list[gym.Env] = []
        self.rows: list[np.ndarray] = []
        self.observation_dim = 0

    # Errors -------------------------------------------------------------------------------

    def _raised(self, call: str, error: Exception) -> TrpoTfError:
        if self.plugin and call.startswith("factory(**") and isinstance(error, TypeError):
            # A value of the wrong type in env.kwargs: the config's, worded as make_env_fn does.
            return ConfigError(
                f"env.kwargs: {describe_plugin(registry.ENVS, self.env_id)} could not be made "
                f"with {_brief(self.kwargs)}: {one_line(error)}; fix or remove those env.kwargs"
            )
        if self.plugin:
            return plugin_raised(ENV_KEY, registry.ENVS, self.env_id, call, error)
        return env_raised(self.env_id, call, error, 0, hint="fix the environment")

    def _broke(self, detail: str) -> TrpoTfError:
        return plugin_broke(ENV_KEY, registry.ENVS, self.env_id, "EnvFactory", detail)

    def _call(self, call: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except TrpoTfError:
            raise
        except Exception as error:  # noqa: BLE001 - the env's failure, named
            raise self._raised(call, error) from error

    # Make -------------------------------------------------------------------------------

    def make(self, config: ExperimentConfig) -> None:
        """Make the env as training does: a plug-in's factory twice, a gymnasium id once."""
        if not self.plugin:
            env_fn = make_env_fn(self.env_id, self.kwargs, config.env.max_episode_steps)
            self.envs.append(env_fn())  # ConfigError for a gymnasium id, as in training
            self.observation_dim = int(np.prod(self.envs[0].observation_space.shape))
            return
        factory = registry.load(registry.ENVS, self.env_id)
        # Unknown keys are ConfigErrors naming the closest key, as in training.
        make_env_fn(self.env_id, self.kwargs, config.env.max_episode_steps)
        call = "factory(**env.kwargs)" if self.kwargs else "factory()"
        for _ in range(2):
            env = self._call(call, factory, **self.kwargs)
            if isinstance(env, gym.Env):
                self.envs.append(env)
                continue
            what = f"the class {env.__name__}" if isinstance(env, type) else type(env).__name__
            raise self._broke(
                f"{call} returned {what}, not a gymnasium.Env instance; return a new env each call"
            )
        first, second = self.envs
        if first is second or first.unwrapped is second.unwrapped:
            raise self._broke(
                f"{call} returned the same {type(first.unwrapped).__name__} object on two calls; "
                "it must return a new environment each call (it is called once per "
                "env.n_envs slot)"
            )
        self.observation_dim = self._flat_width(first.observation_space)

    def _flat_width(self, space: gym.Space) -> int:
        try:
            return int(gym.spaces.flatdim(space))
        except Exception as error:  # noqa: BLE001 - an unflattenable space
            raise self._broke(
                f"observation_space {space} does not flatten to a vector ({error}); use Box, "
                "Discrete, MultiDiscrete, MultiBinary, or a Dict/Tuple of them"
            ) from error

    @property
    def action_space(self) -> gym.Space:
        return self.envs[0].action_space

    @property
    def env_observation_space(self) -> gym.Space:
        """The env's own observation space, before the flattening training adds."""
        from trpo_tf.envs.factory import _FlattenedForTraining

        env = self.envs[0]
        inner = env.env if isinstance(env, _FlattenedForTraining) else env
        return inner.observation_space

    # Reset and step -----------------------------------------------------------------------

    def _flat(self, env: gym.Env, observation: Any, call: str) -> np.ndarray:
        """``observation`` as the ``[observation_dim]`` float64 vector training stores."""
        if not self.plugin:  # made by make_env_fn: already flattened
            row = np.asarray(observation, np.float64).reshape(-1)
        else:
            try:
                row = np.asarray(gym.spaces.flatten(env.observation_space, observation))
                row = row.astype(np.float64).reshape(-1)
            except Exception as error:  # noqa: BLE001 - not an observation of its space
                raise self._broke(
                    f"{call} returned an observation ({_brief(observation)}) that does not "
                    f"flatten in its observation_space {env.observation_space}: "
                    f"{type(error).__name__}: {error}"
                ) from error
        if row.shape != (self.observation_dim,):
            raise self._broke(
                f"{call} returned an observation of {row.size} numbers; observation_space "
                f"{env.observation_space} has {self.observation_dim}"
            )
        return row

    def reset(self) -> None:
        """Reset every env with the run's seed (and the next ones); keep the observations."""
        for index, env in enumerate(self.envs):
            call = f"reset(seed={self.seed + index})"
            result = self._call(call, env.reset, seed=self.seed + index)
            if self.plugin and not (isinstance(result, tuple) and len(result) == 2):
                raise self._broke(
                    f"{call} returned {_brief(result)}; reset() must return (observation, info)"
                )
            self.rows.append(self._flat(env, result[0], call))

    @property
    def observations(self) -> np.ndarray:
        """``[BATCH, observation_dim]`` float32: the real observations, repeated."""
        rows = np.stack(self.rows)
        return np.resize(rows, (BATCH, rows.shape[1])).astype(np.float32)

    def step(self, env_actions: np.ndarray) -> None:
        """Step a plug-in's envs once with the head's env actions and check the results.

        A gymnasium id is not stepped: it is not a plug-in, and training checks every
        step it takes anyway.
        """
        if not self.plugin:
            return
        for index, env in enumerate(self.envs):
            result = self._call("step(action)", env.step, env_actions[index])
            if not (isinstance(result, tuple) and len(result) == 5):
                raise self._broke(
                    f"step(action) returned {_brief(result)}; it must return (observation, "
                    "reward, terminated, truncated, info)"
                )
            observation, reward, terminated, truncated, _ = result
            if not is_number(reward):
                raise self._broke(
                    f"step(action) returned a reward of type {type(reward).__name__} "
                    f"({_brief(reward)}); it must be an int or float"
                )
            for label, flag in (("terminated", terminated), ("truncated", truncated)):
                if not isinstance(flag, bool | np.bool_):
                    raise self._broke(
                        f"step(action) returned {label} of type {type(flag).__name__} "
                        f"({_brief(flag)}); it must be a bool"
                    )
            self._flat(env, observation, "step(action)")

    def close(self, failing: bool) -> None:
        """Close every env; a plug-in's failure to close is an error unless one is raised."""
        first: TrpoTfError | None = None
        for env in self.envs:
            try:
                env.close()
            except Exception as error:  # noqa: BLE001 - named below, or dropped when failing
                if first is None and self.plugin:
                    first = self._raised("close()", error)
                    first.__cause__ = error
        self.envs = []
        if first is not None and not failing:
            raise first


@contextlib.contextmanager
def _probe_envs(config: ExperimentConfig) -> Iterator[_EnvProbe]:
    probe = _EnvProbe(config)
    failing = True
    try:
        probe.make(config)
        probe.reset()
        yield probe
        failing = False
    finally:
        probe.close(failing)


def _brief(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- networks ------------------------------------------------------------------------------


def check_networks(
    config: ExperimentConfig,
    head: Any,
    observations: np.ndarray,
    observation_space: gym.Space,
) -> None:
    """Build the policy and value networks and run each on real observations.

    Args:
        config: the resolved experiment.
        head: the built distribution head (its ``num_inputs``/``num_features`` size the
            policy network's output).
        observations: ``[B, observation_dim]`` float32, as training stores them.
        observation_space: the env's own observation space.

    Raises:
        ConfigError, RegistryError: an unknown network or keyword (as building the run).
        PluginError: the factory raised or returned no Keras model, the network raised
            on the observations, or its output is not ``[B, output_width]`` finite
            float32.
    """
    from trpo_tf.config.build import build_network, policy_network_spec, value_network_spec

    observation_dim = int(observations.shape[1])
    # A non-finite observation is the env's fault, which training names (or clips with
    # env.clip_nonfinite); the networks are checked on finite inputs only.
    observations = np.nan_to_num(observations, nan=0.0, posinf=0.0, neginf=0.0)
    for choice, spec in (
        policy_network_spec(config, head, observation_dim, observation_space),
        value_network_spec(config, observation_dim, observation_space),
    ):
        network = build_network(choice, spec)
        check_network_output(choice.key, choice.name, spec, network, observations)


def check_network_output(
    key: str, name: str, spec: Any, network: Any, observations: np.ndarray
) -> np.ndarray:
    """``network(observations)`` is ``[B, spec.output_width]`` finite float32; returns it.

    Raises:
        PluginError: naming the network, its package, and what it returned.
    """
    import tensorflow as tf

    call = "network(observations)"
    try:
        output = network(tf.constant(observations, tf.float32))
    except TrpoTfError:
        raise
    except Exception as error:  # noqa: BLE001 - the network's failure, named
        raise plugin_raised(key, registry.NETWORKS, name, call, error) from error
    expected = (observations.shape[0], spec.output_width)
    shape = tuple(getattr(output, "shape", ()))
    dtype = getattr(output, "dtype", None)
    problem = ""
    if shape != expected:
        problem = (
            f"{call} returned shape {list(shape)} for observations {list(observations.shape)}, "
            f"expected {list(expected)} = [batch, output_width] ({spec.name})"
        )
    elif dtype != tf.float32:
        problem = f"{call} returned dtype {getattr(dtype, 'name', dtype)}, expected float32"
    elif not np.isfinite(np.asarray(output)).all():
        problem = f"{call} returned NaN or infinite values for finite observations"
    if problem:
        raise plugin_broke(key, registry.NETWORKS, name, "NetworkFactory", problem)
    return np.asarray(output)


# -- advantage estimator -------------------------------------------------------------------


def dummy_advantage_inputs(steps: int, n_envs: int, seed: int = 0) -> AdvantageInputs:
    """A ``[steps, n_envs]`` rollout with episode ends, terminal and truncated, float32."""
    rng = np.random.default_rng(seed)
    shape = (steps, n_envs)
    episode_end = rng.random(shape) < 0.2
    terminated = episode_end & (rng.random(shape) < 0.5)
    values = rng.normal(size=shape)
    return AdvantageInputs(
        rewards=rng.normal(size=shape).astype(np.float32),
        values=values.astype(np.float32),
        next_values=np.concatenate([values[1:], rng.normal(size=(1, n_envs))]).astype(np.float32),
        terminated=terminated.astype(np.float32),
        episode_end=episode_end.astype(np.float32),
        log_rho=np.zeros(shape, np.float32),
    )


def check_estimator(config: ExperimentConfig) -> None:
    """Build the estimator and call it on a dummy rollout of the run's ``n_envs``.

    Raises:
        PluginError: it raised, returned something other than finite ``[T, n_envs]``
            AdvantageOutputs, or modified its inputs.
    """
    from trpo_tf.config.build import build_estimator

    name = config.advantage.estimator
    estimator = build_estimator(config.advantage)
    n_envs = config.env.n_envs
    steps = max(1, min(config.trainer.steps_per_iteration // n_envs, MAX_ROLLOUT_T))
    if steps == n_envs:  # [T, N] and [N, T] would look alike
        steps += 1
    inputs = dummy_advantage_inputs(steps, n_envs, config.seed)
    before = {key: np.copy(value) for key, value in vars(inputs).items()}
    outputs = estimator(inputs)  # guarded: exceptions and shapes are named
    for key, value in before.items():
        if not np.array_equal(getattr(inputs, key), value):
            raise plugin_broke(
                ESTIMATOR_KEY,
                registry.ADVANTAGES,
                name,
                "AdvantageEstimator",
                f"estimator(inputs) modified inputs.{key} in place; compute on copies",
            )
    for field_name in ("advantages", "value_targets"):
        if not np.isfinite(np.asarray(getattr(outputs, field_name), np.float64)).all():
            raise plugin_broke(
                ESTIMATOR_KEY,
                registry.ADVANTAGES,
                name,
                "AdvantageEstimator",
                f"estimator(inputs).{field_name} holds NaN or infinite values for finite inputs",
            )
