"""The run's periodic evaluation: the deterministic policy, and the stochastic one.

Both are evaluated on the same start states (reset seeds from ``seed +
EVAL_SEED_OFFSET``). The stochastic policy samples with a generator of its own,
seeded per evaluation, so the training random streams (and the run's results) are
the same with ``eval.stochastic`` on or off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from trpo_tf.agent import Agent
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.evaluation import EVAL_SEED_OFFSET, RecurrentAct, evaluate
from trpo_tf.rollout.actor import Actor, RecurrentActor
from trpo_tf.rollout.numpy_actor import NumpyActor, NumpyRecurrentActor


class PolicyEvaluation:
    """Returns of ``eval.episodes`` episodes of the run's current policy.

    Args:
        config: the experiment (``eval``, ``seed``, ``env``).
        env_fn: makes one env.
        agent: the agent whose normalizer and head evaluation uses.
        actor: the rollout actor (its deterministic ``mode``).
        observation_dim: width of the flattened observations.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        env_fn: Callable[[], Any],
        agent: Agent,
        actor: Actor | NumpyActor | RecurrentActor | NumpyRecurrentActor,
        observation_dim: int,
    ) -> None:
        self.config = config
        self.env_fn = env_fn
        self.agent = agent
        self.actor = actor
        self.observation_dim = observation_dim
        self._stochastic_actor: Actor | RecurrentActor | None = None
        # Both recurrent actors say so, as the sampler reads it.
        self.recurrent = bool(getattr(actor, "recurrent", False))

    def deterministic(self) -> np.ndarray:
        """``[episodes]`` returns of the deterministic policy."""
        actor = self.actor
        if self.recurrent:
            return self._returns(RecurrentAct(actor.mode, actor.initial_state))
        return self._returns(actor.mode)

    def stochastic(self, iteration: int) -> np.ndarray:
        """``[episodes]`` returns of a ~ π(·|s), sampled with a generator seeded for
        ``iteration``."""
        return self._returns(self._stochastic_act(iteration))

    def _returns(self, act: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        config = self.config
        return evaluate(
            self.env_fn,
            act,
            self.agent.policy.head,
            self.agent.observation_normalizer,
            config.eval.episodes,
            seed=config.seed + EVAL_SEED_OFFSET,
            clip_nonfinite=config.env.clip_nonfinite,
            env_name=config.env.id,
        )

    def _stochastic_act(self, iteration: int) -> Callable[[np.ndarray], np.ndarray]:
        seed = self.config.seed + EVAL_SEED_OFFSET + iteration
        actor = self.actor
        if isinstance(actor, NumpyActor):
            rng = np.random.default_rng(seed)
            return lambda observations: actor.sample_with(observations, rng)
        if self._stochastic_actor is None:  # any batch: evaluation runs up to 16 envs
            kind = RecurrentActor if self.recurrent else Actor
            self._stochastic_actor = kind(self.agent.policy, None, self.observation_dim, seed)
        sampler = self._stochastic_actor
        sampler.generator.reset_from_seed(seed)
        if isinstance(sampler, RecurrentActor):
            return RecurrentAct(
                lambda observations, state: _action_and_state(sampler.sample(observations, state)),
                sampler.initial_state,
            )
        return lambda observations: sampler.sample(observations)[0]


def _action_and_state(sampled: tuple) -> tuple[np.ndarray, tuple]:
    """(action, next state) of a :meth:`RecurrentActor.sample` result."""
    action, _, _, next_state = sampled
    return action, next_state
