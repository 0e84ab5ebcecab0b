"""The trained artifact: policy, value function and observation statistics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from trpo_tf.config.build import build_policy, build_value
from trpo_tf.config.build_networks import env_observation_space, needs_observation_space
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.normalization import ObservationNormalizer, RewardNormalizer
from trpo_tf.policy import Policy


@dataclass
class Agent:
    """Everything needed to act (policy + observation normalizer) and to learn (V)."""

    policy: Policy
    value_network: keras.Model
    value_optimizer: Any
    observation_normalizer: ObservationNormalizer
    reward_normalizer: RewardNormalizer

    @classmethod
    def build(
        cls,
        config: ExperimentConfig,
        observation_dim: int,
        action_space: gym.Space,
        observation_space: gym.Space | None = None,
    ) -> Agent:
        """Policy, value function and normalizers for an env with these spaces.

        Args:
            config: the experiment.
            observation_dim: width of the flattened observations (``EnvSpec.observation_dim``).
            action_space: the env's action space.
            observation_space: the env's own observation space before flattening
                (``EnvSpec.env_observation_space``), which networks other than ``mlp``
                read (``cnn``: the image shape). None: one env is made to read it when
                such a network is configured; the mlp never needs it.
        """
        if observation_space is None and needs_observation_space(config):
            observation_space = env_observation_space(config)
        policy = build_policy(config, observation_dim, action_space, observation_space)
        value_network, value_optimizer = build_value(config, observation_dim, observation_space)
        return cls(
            policy=policy,
            value_network=value_network,
            value_optimizer=value_optimizer,
            observation_normalizer=ObservationNormalizer(
                (observation_dim,), config.env.normalize_obs, config.env.clip_obs
            ),
            reward_normalizer=RewardNormalizer(
                config.env.n_envs, config.advantage.gamma, config.env.normalize_reward
            ),
        )

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(
            policy_network=self.policy.network,
            policy_head=self.policy.head,
            value_network=self.value_network,
        )

    def save(self, directory: Path) -> None:
        """Write ``weights.*`` and ``normalizer.npz`` into ``directory``."""
        from trpo_tf.normalization import normalizer_state

        directory.mkdir(parents=True, exist_ok=True)
        self.checkpoint().write(str(directory / "weights"))
        np.savez(
            directory / "normalizer.npz",
            **normalizer_state(self.observation_normalizer, self.reward_normalizer),
        )

    def restore(self, directory: Path) -> None:
        """Inverse of :meth:`save`."""
        from trpo_tf.normalization import load_normalizer_state

        self.checkpoint().read(str(directory / "weights")).expect_partial()
        with np.load(directory / "normalizer.npz") as state:
            load_normalizer_state(dict(state), self.observation_normalizer, self.reward_normalizer)
