"""Who collects experience: the ``runner:`` section of an experiment.

Every runner satisfies :class:`Runner`. The learner calls :meth:`Runner.collect`
once per iteration and :meth:`Runner.policy_updated` after every update. A
synchronous runner steps its envs inside ``collect`` with the current policy
(β = π_old); an asynchronous one keeps stepping in worker processes with the
newest weights they have received, so β may lag π_old by some versions — every
sample carries β's log-prob and the version it was taken at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import gymnasium as gym

from trpo_tf.agent import Agent
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.envs import make_vector_env
from trpo_tf.errors import ConfigError
from trpo_tf.rollout.async_runner import StepBudgetSpent
from trpo_tf.rollout.sampler import SyncSampler
from trpo_tf.types import Rollout

__all__ = ["Runner", "StepBudgetSpent", "build_runner", "check_mirrorable"]


class Runner(Protocol):
    """Source of rollouts for the learner."""

    total_env_steps: int

    def collect(self, policy_version: int) -> Rollout:
        """A batch of ``steps_per_iteration`` steps; ``policy_version`` is π_old's."""
        ...

    def policy_updated(self, policy_version: int) -> None:
        """The learner's policy changed; ``policy_version`` is the new version."""
        ...

    def state(self) -> dict:
        """Picklable state for checkpoints."""
        ...

    def load_state(self, state: dict) -> bool:
        """Restore :meth:`state`; returns whether env state was restored exactly."""
        ...

    def close(self) -> None: ...


def build_runner(
    config: ExperimentConfig,
    env_fn: Callable[[], gym.Env],
    actor: Any,
    agent: Agent,
    steps_per_env: int,
) -> Runner:
    """The runner ``config.runner.kind`` names."""
    kind = config.runner.kind
    if kind == "sync":
        return SyncSampler(
            make_vector_env(env_fn, config.env.n_envs, config.env.vector, config.env.id),
            config.env.id,
            actor,
            agent.policy.head,
            steps_per_env,
            agent.observation_normalizer,
            agent.reward_normalizer,
            config.env.clip_nonfinite,
            seed=config.seed,
        )
    if kind in ("async", "ray"):
        return _build_async_runner(config, actor, agent, steps_per_env)
    raise ConfigError(f"runner.kind: '{kind}' is not one of sync, async, ray")


def check_mirrorable(actor: Any, head: Any, kind: str) -> None:
    """ConfigError unless ``actor`` can hand workers a numpy snapshot of the policy."""
    if not hasattr(head, "numpy_sampler"):
        raise ConfigError(
            f"runner.kind {kind} needs a distribution with numpy_sampler() "
            f"('{type(head).__name__}' has none); use runner.kind: sync"
        )
    if not hasattr(actor, "snapshot"):
        raise ConfigError(
            f"runner.kind {kind} needs a policy network of Dense layers with activations "
            "linear/tanh/relu/elu/silu, or an lstm/gru cell followed by such layers (workers "
            "run it in numpy); use runner.kind: sync"
        )
    builtin = type(head).__module__.startswith("trpo_tf.distributions")
    if not builtin and not hasattr(head.numpy_sampler(), "to_env_action"):
        raise ConfigError(
            f"runner.kind {kind}: distribution '{type(head).__name__}' maps actions to the env "
            "in to_env_action(), which workers cannot run; give its numpy sampler a "
            "to_env_action(actions) method, or use runner.kind: sync"
        )


def _build_async_runner(
    config: ExperimentConfig, actor: Any, agent: Agent, steps_per_env: int
) -> Runner:
    """An :class:`AsyncRunner` (``async``) or :class:`RayRunner` (``ray``)."""
    from trpo_tf.rollout.async_runner import AsyncRunner
    from trpo_tf.rollout.segment import EnvFactory, WorkerSpec

    runner = config.runner
    if agent.policy.recurrent:
        # Workers act with a numpy twin of its own, which reads θ afresh for every
        # snapshot (the run's actor is synced only before a synchronous rollout).
        from trpo_tf.rollout.numpy_actor import NumpyRecurrentActor, can_mirror_recurrent

        if can_mirror_recurrent(agent.policy):
            actor = NumpyRecurrentActor(agent.policy, config.seed)
    check_mirrorable(actor, agent.policy.head, runner.kind)
    if config.env.n_envs % runner.workers:
        raise ConfigError(
            f"runner.workers: env.n_envs ({config.env.n_envs}) must be a multiple of "
            f"runner.workers ({runner.workers}); each worker steps n_envs / workers envs"
        )
    spec = WorkerSpec(
        env_fn=EnvFactory(config.env.id, config.env.kwargs, config.env.max_episode_steps),
        env_name=config.env.id,
        n_envs=config.env.n_envs // runner.workers,
        segment_length=steps_per_env,
        seed=config.seed,
        clip_nonfinite=config.env.clip_nonfinite,
    )
    args = (
        spec,
        actor,
        agent.observation_normalizer,
        agent.reward_normalizer,
        runner.workers,
        runner.max_policy_lag,
    )
    # The budget bounds the steps collected (dropped ones included), not only those trained on.
    budget = config.trainer.total_steps
    if runner.kind == "ray":
        from trpo_tf.rollout.ray_runner import RayRunner

        return RayRunner(
            *args,
            address=runner.address,
            connect_timeout_s=runner.connect_timeout_s,
            auth_token_file=runner.auth_token_file,
            step_budget=budget,
        )
    return AsyncRunner(*args, step_budget=budget)
