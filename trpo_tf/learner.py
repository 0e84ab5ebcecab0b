"""The learner's half of an iteration: advantages, the TRPO step, the value fit.

Given a rollout collected by β (π_old itself when sampling is synchronous):

    log ρ      = log π_old(a|s) − log β(a|s)          (0 when β = π_old)
    V, Â, V̂    = estimator(rewards, V_φ(s), V_φ(s'), episode ends, log ρ)
    θ          ← TRPO step on J(θ) = mean[π_θ(a|s) / β(a|s) · Â]
    φ          ← Adam fit of V_φ to V̂  (in the background, during the next rollout)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from trpo_tf.agent import Agent
from trpo_tf.config.build import build_estimator
from trpo_tf.config.contracts import check_advantage_outputs
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.errors import NumericalError
from trpo_tf.interfaces import AdvantageEstimator, AdvantageInputs
from trpo_tf.networks.rnn import is_recurrent
from trpo_tf.recurrent_value import RecurrentValues
from trpo_tf.rollout.numpy_actor import mirror_layers, read_weights
from trpo_tf.rollout.numpy_policy import mlp_forward
from trpo_tf.sequences import (
    from_sequences,
    sequence_arguments,
    sequence_log_prob,
    value_sequence_arguments,
)
from trpo_tf.trainer import TrpoHyperparameters, TrpoUpdate
from trpo_tf.trainer.kl_schedule import scheduled_max_kl, training_progress
from trpo_tf.trainer.tracing import traced_without_op_tracebacks
from trpo_tf.trainer.trpo import SKIP_REASONS
from trpo_tf.types import Rollout
from trpo_tf.value_fitter import ValueFitter


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 − Var[target − predicted] / Var[target] (NaN when Var[target] = 0)."""
    variance = float(np.var(target))
    return float("nan") if variance == 0 else 1.0 - float(np.var(target - predicted)) / variance


def compute_advantages(
    rollout: Rollout,
    value_fn: Any,
    estimator: AdvantageEstimator,
    log_rho: np.ndarray | None = None,
    estimator_name: str | None = None,
    value_estimates: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values, advantages and value targets ``[T, N]`` for one rollout.

    V(s_{t+1}) is V(final observation) on truncated steps, V(s_{t+1}) otherwise.
    ``log_rho`` ``[T, N]`` = log π_old(a|s) − log β(a|s) is passed on to the
    estimator (zeros when omitted, i.e. on-policy data). ``value_estimates`` =
    (V(s_t), V(s_{t+1})) ``[T, N]`` each replaces the ``value_fn`` pass (a recurrent V
    computes them with its memory).

    Raises:
        PluginError: the estimator (``estimator_name`` in the message) returned
            something other than an :class:`AdvantageOutputs`.
    """
    T, N = rollout.rewards.shape
    if value_estimates is not None:
        values, next_values = value_estimates
    else:
        obs = rollout.observations.reshape(T * N, -1)
        # Final observations matter only where an episode was truncated.
        truncated = np.flatnonzero(rollout.truncated.reshape(-1))
        final_obs = rollout.final_observations.reshape(T * N, -1)[truncated]
        all_values = value_fn(np.concatenate([obs, rollout.last_observations, final_obs]))
        values = all_values[: T * N].reshape(T, N)
        last_values = all_values[T * N : T * N + N]
        next_values = np.concatenate([values[1:], last_values[None]], axis=0).reshape(-1)
        next_values[truncated] = all_values[T * N + N :]
        next_values = next_values.reshape(T, N)
    episode_end = np.logical_or(rollout.terminated, rollout.truncated)
    inputs = AdvantageInputs(
        rewards=rollout.rewards.astype(np.float32),
        values=values.astype(np.float32),
        next_values=next_values.astype(np.float32),
        terminated=rollout.terminated.astype(np.float32),
        episode_end=episode_end.astype(np.float32),
        log_rho=(np.zeros((T, N)) if log_rho is None else log_rho).astype(np.float32),
    )
    name = estimator_name or getattr(estimator, "__name__", type(estimator).__name__)
    outputs = check_advantage_outputs(estimator(inputs), name)
    return values, np.asarray(outputs.advantages), np.asarray(outputs.value_targets)


def check_finite(values: Any, what: str, iteration: int, stage: str, hint: str) -> None:
    """Raise :class:`NumericalError` when ``values`` (an array, or a list of arrays or
    variables) hold a NaN or an infinity.

    The message names ``what`` became non-finite, at which ``iteration`` and ``stage``,
    how many values, and ``hint`` (what to try).
    """
    arrays = values if isinstance(values, list | tuple) else [values]
    bad = total = 0
    for value in arrays:
        array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        bad += array.size - int(np.count_nonzero(np.isfinite(array)))
        total += array.size
    if bad:
        raise NumericalError(
            f"{what} became non-finite at iteration {iteration} ({stage}: {bad} of {total} "
            f"values NaN or infinite); {hint}"
        )


def staleness_metrics(
    log_rho: np.ndarray, policy_version: np.ndarray, learner_version: int
) -> dict[str, float]:
    """Importance-weight and policy-lag statistics of one batch.

    w = π_old(a|s) / β(a|s); ESS fraction = (Σw)² / (n Σw²) ∈ (0, 1], 1 on-policy.
    Lag = versions between the learner's π_old and the policy that acted.
    """
    weights = np.exp(np.clip(log_rho.astype(np.float64), -50.0, 50.0)).reshape(-1)
    lag = learner_version - policy_version.reshape(-1)
    return {
        "is_weight_mean": float(weights.mean()),
        "is_weight_max": float(weights.max()),
        "is_ess": float(weights.sum() ** 2 / (weights.size * np.square(weights).sum())),
        "policy_lag_mean": float(lag.mean()),
        "policy_lag_max": float(lag.max()),
    }


def normalize_advantages(advantages: np.ndarray) -> np.ndarray:
    """(Â − mean Â) / (std Â + 1e-8), ``[n]``: mean 0 and standard deviation ~1."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def value_predictor(
    value_network: keras.Model, observation_dim: int
) -> Callable[[np.ndarray], np.ndarray]:
    """V_φ(s) as a numpy function ``[n, obs_dim] -> [n]`` reading the current φ.

    A network of plain Dense layers runs as a numpy forward pass with the weights
    read at every call (~0.3 ms for 2,000 states of a 64×64 MLP against ~1.4 ms for
    a compiled call, and nothing to trace); any other network as a compiled function.
    """
    layers = mirror_layers(value_network)
    if layers is not None:

        def forward(observations: np.ndarray) -> np.ndarray:
            return mlp_forward(read_weights(layers), observations)[:, 0]

        return forward
    compiled = tf.function(
        traced_without_op_tracebacks(lambda obs: tf.squeeze(value_network(obs), -1)),
        input_signature=[tf.TensorSpec([None, observation_dim], tf.float32)],
        autograph=False,
    )
    return lambda observations: compiled(observations).numpy()


def build_update(
    config: ExperimentConfig, agent: Agent, batch_size: int, observation_dim: int
) -> TrpoUpdate:
    """The compiled TRPO update for ``config`` and a fixed ``batch_size``."""
    trainer = config.trainer
    return TrpoUpdate(
        agent.policy,
        agent.value_network,
        agent.value_optimizer,
        TrpoHyperparameters(
            max_kl=trainer.max_kl,
            cg_iters=trainer.cg_iters,
            cg_damping=trainer.cg_damping,
            line_search_steps=trainer.line_search_steps,
            line_search_backtrack=trainer.line_search_backtrack,
            fvp_subsample=trainer.fvp_subsample,
            fvp_method=trainer.fvp,
            entropy_coef=trainer.entropy_coef,
            held_out_check=trainer.held_out_check,
            value_epochs=config.value.epochs,
            value_minibatch_size=min(config.value.minibatch_size, batch_size),
        ),
        batch_size=batch_size,
        observation_dim=observation_dim,
        seed=config.seed,
        jit_compile=trainer.jit_compile,
        bptt_length=trainer.bptt_length
        if agent.policy.recurrent or is_recurrent(agent.value_network)
        else 1,
    )


class Learner:
    """Turns one rollout into a policy step and a (background) value fit.

    Args:
        config: the experiment (advantage normalization, behavior correction,
            value-fit overlap are read from it).
        agent: policy π_θ, value network V_φ, normalizers.
        batch_size: samples per rollout (T · n_envs), fixed for the run.
        observation_dim: width of the (normalized) observations.
    """

    def __init__(
        self, config: ExperimentConfig, agent: Agent, batch_size: int, observation_dim: int
    ) -> None:
        self.config = config
        self.batch_size = batch_size
        self.update = build_update(config, agent, batch_size, observation_dim)
        self.estimator: AdvantageEstimator = build_estimator(config.advantage)
        self.value_fitter = ValueFitter(self.update, overlap=config.trainer.overlap_value_fit)
        policy = agent.policy
        # L for a recurrent policy (trained on sequences), 0 for a memoryless one.
        self._bptt_length = config.trainer.bptt_length if policy.recurrent else 0
        self._policy_variables = policy.policy_variables
        self._value_variables = agent.value_network.trainable_variables
        observation_spec = tf.TensorSpec([None, observation_dim], tf.float32)
        self.recurrent_values: RecurrentValues | None = None
        if is_recurrent(agent.value_network):
            self.recurrent_values = RecurrentValues(agent.value_network, config.env.n_envs)
            self._value = None
        else:
            self._value = value_predictor(agent.value_network, observation_dim)
        if self._bptt_length:
            self._sequence_log_prob = sequence_log_prob(policy, self._bptt_length, observation_dim)
        self._log_prob = tf.function(
            traced_without_op_tracebacks(
                lambda obs, act: policy.distribution(policy.dist_params(obs)).log_prob(act)
            ),
            input_signature=[
                observation_spec,
                tf.TensorSpec([None, *policy.head.action_shape], policy.head.action_dtype),
            ],
            autograph=False,
        )

    def old_log_prob(self, rollout: Rollout, iteration: int) -> np.ndarray:
        """log π_old(a_t|s_t) ``[T, N]`` of the rollout's actions (π_old = version ``iteration``).

        Data collected by π_old itself (synchronous sampling) has it stored. Otherwise
        it is recomputed: for a memoryless policy step by step; for a recurrent one
        over the training sequences of ``trainer.bptt_length``, each started from the
        state β recorded there and reset at episode starts (π_old's memory within a
        sequence, β's at its start: the same inputs the TRPO step sees).
        """
        if np.all(rollout.policy_version == iteration):
            # Collected by π_old itself (synchronous sampling): β = π_old, log ρ = 0.
            return rollout.behavior_log_prob
        if self._bptt_length:
            zeros = np.zeros(rollout.rewards.shape, np.float32)
            observations, starts, state, actions, _, _ = sequence_arguments(
                rollout, self._bptt_length, zeros, zeros
            )
            log_prob = self._sequence_log_prob(observations, starts, state, actions).numpy()
            return from_sequences(log_prob, rollout.rewards.shape[1])
        observations, actions = rollout.flat("observations"), rollout.flat("actions")
        return self._log_prob(observations, actions).numpy().reshape(rollout.rewards.shape)

    def max_kl_at(self, iteration: int) -> float:
        """δ of iteration ``iteration`` (1-based) under ``trainer.max_kl_final``'s schedule."""
        trainer = self.config.trainer
        progress = training_progress(iteration, self.batch_size, trainer.total_steps)
        return scheduled_max_kl(trainer.max_kl, trainer.max_kl_final, progress)

    def learn(self, rollout: Rollout, iteration: int) -> dict[str, Any]:
        """Update θ from ``rollout`` (π_old = version ``iteration``), queue V's fit.

        Returns the metrics of the step: the update's (``kl``, ``grad_norm``, ...;
        ``skip_reason`` as its text, empty when the step was not skipped), ``max_kl``
        (δ of this step),
        ``value_loss`` (V's MSE on this batch before fitting), ``explained_variance``
        and the importance-weight/policy-lag statistics.

        Raises:
            NumericalError: the advantages or value targets of this batch, or θ after
                the step, hold a NaN or an infinity; or φ after the previous
                iteration's fit did (raised when that fit is waited for).
        """
        self.value_fitter.wait()  # V must be fitted before it is used
        observations, actions = rollout.flat("observations"), rollout.flat("actions")
        old_log_prob = self.old_log_prob(rollout, iteration)
        log_rho = old_log_prob - rollout.behavior_log_prob
        estimator = self.config.advantage.estimator
        value_states: tuple[np.ndarray, ...] = ()
        value_estimates = None
        if self.recurrent_values is not None:
            values, next_values, value_states = self.recurrent_values(rollout)
            value_estimates = (values, next_values)
        values, advantages, targets = compute_advantages(
            rollout, self._value, self.estimator, log_rho, estimator, value_estimates
        )
        stage = f"advantage estimation, estimator '{estimator}'"
        hint = "check the rewards (env.normalize_reward) and V_φ's predictions"
        check_finite(advantages, "advantages", iteration, stage, hint)
        check_finite(targets, "value targets", iteration, stage, hint)
        flat_adv = advantages.reshape(-1)
        if self.config.advantage.normalize:
            flat_adv = normalize_advantages(flat_adv)
            check_finite(
                flat_adv,
                "normalized advantages",
                iteration,
                "advantage.normalize",
                "their mean or spread overflowed: check the rewards' scale",
            )
        # The surrogate's denominator is β as stored at collection time. Turning the
        # correction off (an ablation) treats stale data as if π_old had collected it.
        correct = self.config.trainer.behavior_correction
        denominator = rollout.behavior_log_prob if correct else old_log_prob
        if self._bptt_length:
            arguments = sequence_arguments(
                rollout,
                self._bptt_length,
                denominator,
                flat_adv.reshape(rollout.rewards.shape),
            )
        else:
            arguments = (
                observations,
                actions,
                denominator.reshape(-1).astype(np.float32),
                flat_adv.astype(np.float32),
            )
        if self.update.policy_update.experimental_get_tracing_count() == 0:
            # Trace the policy step here; while its graph is instantiated (TensorFlow
            # releases the GIL there) the worker traces and builds the value fit.
            self.update.policy_update.get_concrete_function(*arguments)
            self.value_fitter.prepare()
        max_kl = self.max_kl_at(iteration)
        self.update.set_max_kl(max_kl)
        metrics: dict[str, Any] = {
            k: float(v) for k, v in self.update.run_policy_step(*arguments).items()
        }
        metrics["max_kl"] = max_kl
        check_finite(
            self._policy_variables,
            "policy parameters",
            iteration,
            "policy step",
            "the run stops before they are checkpointed or exported; check the distribution's "
            "log_prob and KL (trpo_tf.testing.check_distribution) or lower trainer.max_kl",
        )
        if self.recurrent_values is not None:
            value_inputs = value_sequence_arguments(
                rollout, self.config.trainer.bptt_length, value_states, targets
            )
        else:
            value_inputs = (observations, targets.reshape(-1).astype(np.float32))
        self.value_fitter.launch(
            *value_inputs,
            check=lambda: check_finite(
                self._value_variables,
                "value parameters",
                iteration,
                "value fit",
                "the run stops before they are checkpointed or exported; lower "
                "value.learning_rate or scale the rewards (env.normalize_reward)",
            ),
        )
        # Reported before fitting (so it is the same whether or not the fit overlaps
        # the next rollout): how well V predicts this batch's targets, MSE.
        # Huge but finite targets may overflow here; the finiteness checks above own the
        # message, numpy's warnings would only precede it.
        with np.errstate(over="ignore", invalid="ignore"):
            metrics["value_loss"] = float(np.mean(np.square(values - targets)))
            metrics["explained_variance"] = explained_variance(
                values.reshape(-1), targets.reshape(-1)
            )
        metrics.update(staleness_metrics(log_rho, rollout.policy_version, iteration))
        metrics["line_search_accepted"] = bool(metrics["line_search_accepted"])
        metrics["line_search_steps"] = int(metrics["line_search_steps"])
        metrics["skip_reason"] = SKIP_REASONS[int(metrics["skip_reason"])]
        return metrics
