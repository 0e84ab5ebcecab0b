"""Plug-in contracts as :class:`typing.Protocol` classes.

A plug-in package registers a *factory* under an entry-point group (see
``trpo_tf.registry``); the factory builds an object that satisfies one of these
protocols. ``trpo_tf.testing`` checks an implementation against its contract.

Entry-point groups and what their factories return:

* ``trpo_tf.distributions``: ``factory(action_space, **kwargs) -> DistributionHead``
* ``trpo_tf.advantages``: ``factory(gamma=..., lam=..., **kwargs) -> AdvantageEstimator``
* ``trpo_tf.envs``: ``factory(**kwargs) -> gymnasium.Env``
* ``trpo_tf.trackers``: ``factory(run_dir=Path, experiment=dict, **kwargs) -> Tracker``
  (keyword arguments only: the parameters must be named ``run_dir`` and ``experiment``)
* ``trpo_tf.networks``: ``factory(spec: NetworkSpec, **kwargs) -> keras.Model`` (a policy
  or value torso ``[batch, spec.observation_dim] -> [batch, spec.output_width]``)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class DistributionHead(Protocol):
    """Turns a policy network's output into an action distribution.

    The network emits ``[batch, num_inputs]`` raw outputs; :meth:`params` turns them
    (plus the head's own state-independent variables, such as a log-std) into the
    full distribution parameter vector ``[batch, param_dim]``. That vector is what a
    rollout stores for the behavior policy β and what the trainer stop-gradients as
    π_old, so :meth:`distribution` must rebuild the exact distribution from it alone.
    """

    num_inputs: int
    """Width of the policy network's last layer (including ``num_features``, if set).

    Optional attribute ``num_features: int``: a head that sets it to the last hidden
    width receives those activations after the outputs (the network then ends in
    :class:`~trpo_tf.networks.DenseWithFeatures`); see docs/plugins.md.
    """

    param_dim: int
    """Width of the distribution parameter vector."""

    action_shape: tuple[int, ...]
    """Shape of one action as the distribution samples it (``()`` for Discrete)."""

    action_dtype: Any
    """``tf.DType`` of sampled actions (``tf.int32`` or ``tf.float32``)."""

    @property
    def trainable_variables(self) -> tuple[Any, ...]:
        """The head's own policy parameters (e.g. log-std), possibly empty."""
        ...

    def params(self, net_out: Any) -> Any:
        """``[batch, num_inputs] -> [batch, param_dim]`` distribution parameters."""
        ...

    def distribution(self, params: Any) -> Any:
        """``[batch, param_dim]`` -> a ``tfp.distributions.Distribution`` with batch
        shape ``[batch]`` whose ``log_prob(actions)`` is ``[batch]``."""
        ...

    def mode(self, params: Any) -> Any:
        """Deterministic action ``[batch, *action_shape]`` for evaluation."""
        ...

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        """Map sampled actions ``[n_envs, *action_shape]`` to what ``env.step`` takes
        (e.g. clip to the Box bounds). The stored action is the unclipped sample."""
        ...

    def diagnostics(self, params: Any) -> Mapping[str, Any]:
        """Scalar tensors worth logging per iteration (e.g. ``policy_std``)."""
        ...


@dataclass(frozen=True)
class AdvantageInputs:
    """What an advantage estimator sees: one rollout, time-major.

    All arrays are ``[T, n_envs]`` float32 (booleans as 0/1 floats) unless noted.

    Attributes:
        rewards: r_t (already normalized when reward normalization is on).
        values: V(s_t) under the current value function.
        next_values: V(s_{t+1}) of the true successor state: for a truncated step
            this is V(final observation), never V(reset observation). Estimators
            multiply it by ``1 - terminated``.
        terminated: 1 where s_{t+1} is terminal (no bootstrap).
        episode_end: 1 where the episode ended (terminated or truncated); the
            recursion of multi-step estimators must not cross it.
        log_rho: log π_old(a_t|s_t) − log β(a_t|s_t), the log importance ratio of the
            learner's current policy against the behavior policy (0 on-policy).
    """

    rewards: np.ndarray
    values: np.ndarray
    next_values: np.ndarray
    terminated: np.ndarray
    episode_end: np.ndarray
    log_rho: np.ndarray


@dataclass(frozen=True)
class AdvantageOutputs:
    """Estimator result, both ``[T, n_envs]`` float32.

    Attributes:
        advantages: Â(s_t, a_t), before any normalization (the trainer normalizes).
        value_targets: regression targets for V(s_t).
    """

    advantages: np.ndarray
    value_targets: np.ndarray


@runtime_checkable
class AdvantageEstimator(Protocol):
    """Computes advantages and value targets from one rollout."""

    def __call__(self, inputs: AdvantageInputs) -> AdvantageOutputs: ...


@runtime_checkable
class EnvFactory(Protocol):
    """Builds one ``gymnasium.Env``; called once per vector-env slot."""

    def __call__(self, **kwargs: Any) -> Any: ...


@runtime_checkable
class Tracker(Protocol):
    """Receives every metrics row and the final summary of a run.

    ``trpo_tf.tracking.build_trackers`` creates the trackers an experiment asks for
    (W&B, TensorBoard, ...); the run directory is always written regardless.
    A tracker must never raise out of these methods: it warns once and goes quiet.
    """

    def log(self, row: Mapping[str, Any], step: int) -> None:
        """One iteration's metrics (the ``metrics.csv`` row); ``step`` = env steps."""
        ...

    def finish(self, summary: Mapping[str, Any], run_dir: Any) -> None:
        """End of the run: ``summary.json`` contents and the run directory path."""
        ...


@dataclass(frozen=True)
class NetworkSpec:
    """What a ``trpo_tf.networks`` factory is asked to build (``factory(spec, **kwargs)``).

    The network maps observations as training stores them, ``[batch, observation_dim]``
    float32 (flattened row-major as gymnasium's ``FlattenObservation`` does, and
    standardized when ``normalized_observations``), to ``[batch, output_width]`` float32.
    ``observation_space`` tells the structure to restore in the graph: an image Box
    ``(H, W, C)`` is ``tf.reshape(x, [-1, H, W, C])`` of its input.

    Attributes:
        observation_space: the env's own observation space, before flattening (e.g.
            ``Box(0, 255, (H, W, C), uint8)``).
        observation_dim: width of the network's input, ``flatdim(observation_space)``.
        output_dim: outputs before any features (the head's ``num_inputs`` minus its
            ``num_features`` for the policy, 1 for the value function).
        hidden: widths of the fully connected layers (``policy.hidden`` /
            ``value.hidden``): all of an MLP, the layers after a torso's own ones.
        activation: their activation (``policy.activation`` / ``value.activation``).
        output_gain: gain of the output layer's orthogonal initializer (0.01 for the
            policy, 1.0 for the value function).
        seed: seeds every initializer: the same spec builds the same weights.
        name: the Keras model's name (``policy_network`` / ``value_network``).
        append_features: end in :class:`~trpo_tf.networks.DenseWithFeatures`, so the
            last hidden activations ``[batch, hidden[-1]]`` follow the outputs (a head
            with ``num_features``, e.g. ``gsde``).
        normalized_observations: ``env.normalize_obs`` standardizes the inputs (a
            torso that rescales raw pixels must not rescale them again).
    """

    observation_space: Any
    observation_dim: int
    output_dim: int
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    output_gain: float = 1.0
    seed: int = 0
    name: str = "network"
    append_features: bool = False
    normalized_observations: bool = False

    @property
    def output_width(self) -> int:
        """``output_dim``, plus ``hidden[-1]`` with ``append_features``."""
        features = int(self.hidden[-1]) if self.append_features and self.hidden else 0
        return int(self.output_dim) + features


@runtime_checkable
class NetworkFactory(Protocol):
    """Builds a policy or value torso: a built ``keras.Model`` (weights exist) mapping
    ``[batch, spec.observation_dim]`` float32 to ``[batch, spec.output_width]`` float32.

    Its ``trainable_variables`` are part of θ (policy) or φ (value): the update
    differentiates through it twice (Fisher-vector products) and may compile it with
    XLA, and it is checkpointed and exported in a SavedModel. It is called without a
    ``training`` flag: no dropout or batch statistics.
    """

    def __call__(self, spec: NetworkSpec, **kwargs: Any) -> Any: ...


@runtime_checkable
class RecurrentNetwork(Protocol):
    """What a network with memory (``lstm``, ``gru``) offers besides the Keras call.

    A ``trpo_tf.networks`` factory that returns a model with these members makes the
    policy recurrent: rollouts carry its state per env (zeros at an episode's start)
    and the TRPO step unrolls it over sequences of ``trainer.bptt_length`` steps from
    the state recorded at collection. ``call(observations)`` is one step from the
    initial state. ``sequence`` must equal ``step`` repeated ``L`` times with the state
    set to zeros before every step whose ``starts`` is 1 (checked by
    :func:`trpo_tf.testing.check_network`); writing it as a static Python loop over
    ``L`` keeps the Fisher-vector products' second derivatives out of ``tf.while_loop``.
    """

    state_sizes: tuple[int, ...]
    """Widths of the state tensors: ``(H, H)`` for an LSTM's (h, c), ``(H,)`` for a GRU."""

    def initial_state(self, batch_size: Any) -> tuple[Any, ...]:
        """Zeros ``[batch_size, size]`` per state tensor."""
        ...

    def step(self, observations: Any, state: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
        """``[n, observation_dim]``, state → (``[n, output_width]``, next state)."""
        ...

    def sequence(self, observations: Any, state: tuple[Any, ...], starts: Any) -> Any:
        """``[B, L, observation_dim]``, state ``([B, size], ...)``, ``starts [B, L]`` →
        ``[B, L, output_width]``."""
        ...
