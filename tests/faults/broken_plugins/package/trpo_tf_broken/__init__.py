"""Plug-ins written from docs/plugins.md, then broken on purpose, one way per entry point.

The working pieces are the guide's example (a diagonal Gaussian with a fixed σ, here
with the optional numpy twin) and a one-dimensional environment; every other entry
point is one of them with a single, realistic mistake:

| entry point                | mistake                                                  |
|----------------------------|----------------------------------------------------------|
| broken_raising_head        | the factory raises                                       |
| broken_short_params        | params() returns [B, d] (the mean) for param_dim 2d      |
| broken_extra_diagnostics   | diagnostics() adds a key metrics.csv does not have       |
| broken_offset_sampler      | the numpy twin's log-prob is off by a constant           |
| broken_graph_if            | params() uses Python ``if`` on a tensor (fine eagerly,   |
|                            | fails once traced)                                       |
| broken_flat                | the estimator returns [T·N] arrays                       |
| broken_tuple               | the estimator returns a tuple                            |
| broken_late_raise          | the estimator raises from its second call on             |
| broken_raising_env         | the env factory raises                                   |
| broken_same_env            | the env factory returns one object on every call         |
| broken_array_reward        | step() returns the reward as a 1-element array           |
| broken_int_terminated      | step() returns terminated as an int                      |
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from trpo_tf.errors import IncompatibleSpaceError
from trpo_tf.interfaces import AdvantageOutputs

tfd = tfp.distributions

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# -- the guide's distribution head, with a numpy twin --------------------------------------


class GuideGaussianHead(tf.Module):
    """The guide's head: N(μ(s), σ² I) with a fixed σ; params = μ ``[batch, d]``."""

    def __init__(self, space: gym.spaces.Box, std: float, log_prob_offset: float = 0.0) -> None:
        super().__init__(name="fixed_std_gaussian")
        size = int(np.prod(space.shape))
        self.num_inputs = size
        self.param_dim = size
        self.action_shape = (size,)
        self.action_dtype = tf.float32
        self.std = float(std)
        self.space = space
        self.log_prob_offset = log_prob_offset

    @property
    def trainable_variables(self):
        return ()

    def params(self, net_out):
        return net_out

    def distribution(self, params):
        return tfd.MultivariateNormalDiag(loc=params, scale_diag=tf.ones_like(params) * self.std)

    def mode(self, params):
        return params

    def to_env_action(self, actions):
        actions = np.asarray(actions)
        low, high = self.space.low.reshape(-1), self.space.high.reshape(-1)
        clipped = np.clip(actions, low, high).astype(self.space.dtype)
        return clipped.reshape((actions.shape[0], *self.space.shape))

    def to_env_action_graph(self, actions):
        low, high = self.space.low.reshape(-1), self.space.high.reshape(-1)
        clipped = tf.clip_by_value(
            actions, tf.constant(low, actions.dtype), tf.constant(high, actions.dtype)
        )
        clipped = tf.cast(clipped, tf.as_dtype(self.space.dtype))
        return tf.reshape(clipped, [-1, *self.space.shape])

    def diagnostics(self, params):
        return {"policy_std": tf.constant(self.std)}


class FixedStdGaussianHead(GuideGaussianHead):
    """The guide's head with the optional numpy twin."""

    def numpy_sampler(self):
        return FixedStdNumpySampler(self.std, self.log_prob_offset)


class FixedStdNumpySampler:
    """The numpy twin: ``sample(net_out, rng)`` with ``rng`` a ``numpy.random.Generator``."""

    def __init__(self, std: float, log_prob_offset: float = 0.0) -> None:
        self.std = std
        self.log_prob_offset = log_prob_offset

    def sample(self, net_out, rng):
        noise = rng.standard_normal(net_out.shape).astype(np.float32)
        actions = net_out + np.float32(self.std) * noise
        log_prob = np.sum(-0.5 * noise**2 - math.log(self.std) - _HALF_LOG_2PI, axis=-1)
        log_prob = log_prob + self.log_prob_offset
        return actions, log_prob.astype(np.float32), net_out

    def mode(self, net_out):
        return net_out


def _box(action_space, name):
    if not isinstance(action_space, gym.spaces.Box):
        raise IncompatibleSpaceError(
            f"distribution '{name}' needs a Box action space, got {action_space}"
        )
    return action_space


class LateRaisingNumpySampler(FixedStdNumpySampler):
    """Right for the pre-check's few calls, then raises inside a rollout."""

    calls = 0

    def sample(self, net_out, rng):
        LateRaisingNumpySampler.calls += 1
        if LateRaisingNumpySampler.calls > 20:
            raise ArithmeticError("noise table exhausted")
        return super().sample(net_out, rng)


class LateRaisingSamplerHead(GuideGaussianHead):
    def numpy_sampler(self):
        return LateRaisingNumpySampler(self.std)


def make_late_raise_sampler_gaussian(action_space, std=0.5):
    """Entry point ``broken_late_sampler``: its numpy twin raises during the rollout."""
    return LateRaisingSamplerHead(_box(action_space, "broken_late_sampler"), std)


def make_fixed_std_gaussian(action_space, std=0.5):
    """Entry point ``broken_fixed_std``: the guide's example, working."""
    return FixedStdGaussianHead(_box(action_space, "broken_fixed_std"), std)


def make_raising_head(action_space, std=0.5):
    """Entry point ``broken_raising_head``: the constructor raises."""
    raise RuntimeError(f"no σ table for {action_space.shape} actions")


class ShortParamsGaussianHead(GuideGaussianHead):
    """A learned-σ Gaussian whose params() forgot to append the log-σ half."""

    def __init__(self, space, std):
        super().__init__(space, std)
        self.num_inputs = 2 * self.param_dim  # μ and log σ from the network
        self.param_dim = 2 * self.param_dim

    def params(self, net_out):
        mean, _ = tf.split(net_out, 2, axis=-1)
        return mean  # [B, d]: should be net_out, [B, 2d]

    def distribution(self, params):
        mean, log_std = tf.split(params, 2, axis=-1)
        return tfd.MultivariateNormalDiag(loc=mean, scale_diag=tf.exp(log_std))

    def mode(self, params):
        return tf.split(params, 2, axis=-1)[0]


def make_short_params_gaussian(action_space, std=0.5):
    """Entry point ``broken_short_params``."""
    return ShortParamsGaussianHead(_box(action_space, "broken_short_params"), std)


class ExtraDiagnosticsHead(FixedStdGaussianHead):
    def diagnostics(self, params):
        return {"policy_std": tf.constant(self.std), "mean_abs_mu": tf.reduce_mean(abs(params))}


def make_extra_diagnostics_gaussian(action_space, std=0.5):
    """Entry point ``broken_extra_diagnostics``."""
    return ExtraDiagnosticsHead(_box(action_space, "broken_extra_diagnostics"), std)


def make_offset_sampler_gaussian(action_space, std=0.5):
    """Entry point ``broken_offset_sampler``: the twin forgot a −log σ term per dimension."""
    return FixedStdGaussianHead(
        _box(action_space, "broken_offset_sampler"), std, log_prob_offset=math.log(std)
    )


class GraphIfHead(FixedStdGaussianHead):
    def params(self, net_out):
        if tf.reduce_any(tf.abs(net_out) > 1e6):  # a Python if on a tensor
            net_out = tf.clip_by_value(net_out, -1e6, 1e6)
        return net_out


def make_graph_if_gaussian(action_space, std=0.5):
    """Entry point ``broken_graph_if``: works eagerly, fails when the update is traced."""
    return GraphIfHead(_box(action_space, "broken_graph_if"), std)


# -- advantage estimators -----------------------------------------------------------------


def _gae(inputs, gamma, lam):
    """GAE(γ, λ) over ``[T, N]`` inputs, the plain loop."""
    not_terminal = 1.0 - inputs.terminated
    not_end = 1.0 - inputs.episode_end
    deltas = inputs.rewards + gamma * inputs.next_values * not_terminal - inputs.values
    advantages = np.zeros_like(deltas)
    running = np.zeros(deltas.shape[1], np.float32)
    for t in reversed(range(deltas.shape[0])):
        running = deltas[t] + gamma * lam * not_end[t] * running
        advantages[t] = running
    return advantages, advantages + inputs.values


def make_flat_estimator(gamma, lam):
    """Entry point ``broken_flat``: returns ``[T·N]`` arrays."""

    def estimator(inputs):
        advantages, targets = _gae(inputs, gamma, lam)
        return AdvantageOutputs(advantages.reshape(-1), targets.reshape(-1))

    return estimator


def make_tuple_estimator(gamma, lam):
    """Entry point ``broken_tuple``: returns a tuple instead of AdvantageOutputs."""

    def estimator(inputs):
        return _gae(inputs, gamma, lam)

    return estimator


def make_late_raise_estimator(gamma, lam):
    """Entry point ``broken_late_raise``: right on its first call, raises from the second."""
    calls = []

    def estimator(inputs):
        calls.append(1)
        if len(calls) > 1:
            raise FloatingPointError(f"λ-return table overflowed at call {len(calls)}")
        return AdvantageOutputs(*_gae(inputs, gamma, lam))

    return estimator


# -- environments --------------------------------------------------------------------------


class LineEnv(gym.Env):
    """Move a point on a line towards 0; a Box(1) action, a Box(2) observation."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, length: int = 20) -> None:
        self.length = length
        self.t = 0
        self.x = 0.0

    def _observation(self):
        return np.array([self.x, self.t / self.length], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.x = float(self.np_random.uniform(-1.0, 1.0))
        return self._observation(), {}

    def step(self, action):
        self.t += 1
        self.x += 0.1 * float(np.clip(np.asarray(action).reshape(-1)[0], -1.0, 1.0))
        reward = -abs(self.x)
        return self._observation(), reward, abs(self.x) > 2.0, self.t >= self.length, {}


def make_line_env(length=20):
    """Entry point ``broken_line``: a working env."""
    return LineEnv(int(length))


def make_raising_env(length=20):
    """Entry point ``broken_raising_env``: the factory raises."""
    raise OSError("simulator license file not found")


_THE_ENV = []


def make_same_env(length=20):
    """Entry point ``broken_same_env``: one cached env for every call."""
    if not _THE_ENV:
        _THE_ENV.append(LineEnv(length))
    return _THE_ENV[0]


class ArrayRewardEnv(LineEnv):
    def step(self, action):
        observation, reward, terminated, truncated, info = super().step(action)
        return observation, np.array([reward], np.float32), terminated, truncated, info


def make_array_reward_env(length=20):
    """Entry point ``broken_array_reward``: rewards as 1-element arrays."""
    return ArrayRewardEnv(length)


class IntTerminatedEnv(LineEnv):
    def step(self, action):
        observation, reward, terminated, truncated, info = super().step(action)
        return observation, reward, int(terminated), truncated, info


def make_int_terminated_env(length=20):
    """Entry point ``broken_int_terminated``: terminated as 0/1 ints."""
    return IntTerminatedEnv(length)
