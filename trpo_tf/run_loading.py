"""Rebuild a trained agent from a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trpo_tf.agent import Agent
from trpo_tf.config import load_experiment
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.envs import describe, make_env_fn
from trpo_tf.errors import RunDirError
from trpo_tf.evaluation import EVAL_SEED_OFFSET, RecurrentAct, evaluate


def _config_path(run_dir: Path) -> Path:
    """``run_dir/config.yaml``, which makes it a run directory."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory: no config.yaml in it")
    return config_path


def load_run(run_dir: Path) -> tuple[ExperimentConfig, Agent]:
    """The run's resolved config and its agent with the final weights restored."""
    config_path = _config_path(run_dir)
    policy_dir = run_dir / "policy"
    if not (policy_dir / "normalizer.npz").is_file():
        raise RunDirError(
            f"{run_dir} has no trained policy (policy/ is missing); the run may not have finished"
        )
    config = load_experiment(config_path)
    spec = describe(
        config.env.id, make_env_fn(config.env.id, config.env.kwargs, config.env.max_episode_steps)
    )
    agent = Agent.build(config, spec.observation_dim, spec.action_space, spec.env_observation_space)
    agent.restore(policy_dir)
    return config, agent


def run_eval_settings(
    run_dir: Path, episodes: int | None = None, seed: int | None = None
) -> tuple[int, int]:
    """``(episodes, seed)`` with each None replaced by what the run's training used.

    Training's evaluations run ``eval.episodes`` episodes from reset seed
    ``seed + EVAL_SEED_OFFSET``; evaluating with both reproduces ``final_eval_return``.

    Raises:
        RunDirError: ``run_dir`` has no ``config.yaml``.
    """
    config = load_experiment(_config_path(Path(run_dir)))
    return (
        config.eval.episodes if episodes is None else episodes,
        config.seed + EVAL_SEED_OFFSET if seed is None else seed,
    )


def deterministic_act(agent: Agent, observation_dim: int) -> Any:
    """The agent's deterministic policy on normalized observations ``[n, obs_dim]``.

    A memoryless policy: a function to actions. A recurrent one: a
    :class:`~trpo_tf.evaluation.RecurrentAct` that carries the state per row (call its
    ``begin(n)`` before the first step, ``end_episodes(done)`` after each).
    """
    import tensorflow as tf

    policy = agent.policy
    if policy.recurrent:
        from trpo_tf.rollout.actor import RecurrentActor

        actor = RecurrentActor(policy, None, observation_dim, seed=0)
        return RecurrentAct(actor.mode, actor.initial_state)
    mode = tf.function(lambda obs: policy.head.mode(policy.dist_params(obs)), autograph=False)
    return lambda observations: mode(tf.constant(observations)).numpy()


def evaluate_run(run_dir: Path, episodes: int, seed: int) -> np.ndarray:
    """Deterministic returns ``[episodes]`` of the run's final policy (a recurrent one
    with a state per episode)."""
    config, agent = load_run(run_dir)
    policy = agent.policy
    return evaluate(
        make_env_fn(config.env.id, config.env.kwargs, config.env.max_episode_steps),
        deterministic_act(agent, agent.observation_normalizer.shape[0]),
        policy.head,
        agent.observation_normalizer,
        episodes,
        seed,
        clip_nonfinite=config.env.clip_nonfinite,
        env_name=config.env.id,
    )
