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
  space's width): :mod:`trpo_tf.plugin_env_checks`, whose
  :func:`~trpo_tf.plugin_env_checks.check_env` is this part without stepping, and
  without TensorFlow, for callers that check before TensorFlow is imported;
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

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf import registry
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.errors import TrpoTfError
from trpo_tf.interfaces import AdvantageInputs
from trpo_tf.plugin_env_checks import probe_envs
from trpo_tf.plugin_errors import ESTIMATOR_KEY, plugin_broke, plugin_raised

MAX_ROLLOUT_T = 16
"""Time steps of the estimator's dummy rollout (at most; ``n_envs`` columns)."""


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
    with probe_envs(config) as probe:
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


def _head_name(config: ExperimentConfig, action_space: gym.Space) -> str:
    name = config.policy.distribution
    if name == "auto":
        from trpo_tf.distributions.auto import auto_distribution_name

        name = auto_distribution_name(action_space)
    return name


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
    from trpo_tf.config.build_networks import (
        build_network,
        policy_network_spec,
        value_network_spec,
    )

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
