"""What a training run's checkpoint holds, apart from the checkpoint format itself.

Two halves: the TensorFlow objects by name (:func:`tf_state`: the policy and value
networks, the value optimizer, the update's and a TF actor's random generators) and
the Python state (:func:`python_state`: the loop counters of :class:`LoopState`, the
observation and reward normalizers, a numpy actor's random generator, the sampler's
environments and a recurrent value fit's state). :func:`restore_python_state` is the
inverse of :func:`python_state`; :mod:`trpo_tf.checkpoint` writes and reads both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trpo_tf.agent import Agent
from trpo_tf.rollout.actor import Actor, RecurrentActor
from trpo_tf.rollout.numpy_actor import NumpyActor, NumpyRecurrentActor


def tf_state(agent: Agent, update: Any, actor: Any) -> dict[str, Any]:
    """The TensorFlow objects a checkpoint holds, by name."""
    objects: dict[str, Any] = {
        "policy_network": agent.policy.network,
        "policy_head": agent.policy.head,
        "value_network": agent.value_network,
        "value_optimizer": agent.value_optimizer,
        "update_generator": update.generator,
    }
    if isinstance(actor, Actor | RecurrentActor):
        objects["actor_generator"] = actor.generator
    return objects


@dataclass
class LoopState:
    """Counters of the training loop that a checkpoint carries."""

    iteration: int = 0
    recent_returns: list[float] = field(default_factory=list)
    eval_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    eval_time: float = 0.0
    elapsed: float = 0.0
    best_eval_return: float = float("-inf")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LoopState:
        return cls(
            iteration=int(state["iteration"]),
            recent_returns=[float(x) for x in state["recent_returns"]],
            eval_returns=np.asarray(state["eval_returns"], np.float64),
            eval_time=float(state["eval_time"]),
            elapsed=float(state["elapsed"]),
            best_eval_return=float(state.get("best_eval_return", float("-inf"))),
        )


def python_state(
    loop: LoopState, agent: Agent, actor: Any, sampler: Any, recurrent_values: Any
) -> dict[str, Any]:
    """The Python half of a checkpoint (encoded by :mod:`trpo_tf.checkpoint`, no pickle)."""
    return {
        "loop": dataclasses.asdict(loop),
        "obs_stats": agent.observation_normalizer.stats.state(),
        "reward_stats": agent.reward_normalizer.stats.state(),
        "reward_returns": agent.reward_normalizer.returns,
        "numpy_rng": actor.rng.bit_generator.state
        if isinstance(actor, NumpyActor | NumpyRecurrentActor)
        else None,
        "sampler": sampler.state(),
        "recurrent_values": recurrent_values.state() if recurrent_values is not None else None,
    }


def restore_python_state(
    state: dict[str, Any], agent: Agent, actor: Any, sampler: Any, recurrent_values: Any
) -> tuple[LoopState, bool]:
    """Load :func:`python_state`'s ``state`` back into the run's objects.

    Returns:
        The loop counters, and whether the sampler's environments were restored
        (False: episodes restart from reset).
    """
    agent.observation_normalizer.stats.load_state(state["obs_stats"])
    agent.reward_normalizer.stats.load_state(state["reward_stats"])
    agent.reward_normalizer.returns = state["reward_returns"]
    if isinstance(actor, NumpyActor | NumpyRecurrentActor):
        actor.rng.bit_generator.state = state["numpy_rng"]
    if recurrent_values is not None and state.get("recurrent_values") is not None:
        recurrent_values.load_state(state["recurrent_values"])
    return LoopState.from_state(state["loop"]), sampler.load_state(state["sampler"])
