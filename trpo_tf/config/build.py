"""The one place where names from an experiment become objects.

Everything below this module takes plain values; plug-in names are resolved here
through :mod:`trpo_tf.registry`.
"""

from __future__ import annotations

import gymnasium as gym
import keras

from trpo_tf import registry
from trpo_tf.config.contracts import (
    check_estimator,
    check_head,
    check_kwargs,
    check_passed_keywords,
)
from trpo_tf.config.schema import AdvantageConfig, ExperimentConfig, PolicyConfig
from trpo_tf.distributions.auto import auto_distribution_name
from trpo_tf.errors import ConfigError
from trpo_tf.interfaces import AdvantageEstimator, DistributionHead
from trpo_tf.networks import build_mlp
from trpo_tf.policy import Policy
from trpo_tf.trainer.adam import FusedAdam


def build_distribution(config: PolicyConfig, action_space: gym.Space) -> DistributionHead:
    """Resolve ``policy.distribution`` (or ``auto``) and build its head."""
    name = config.distribution
    if name == "auto":
        name = auto_distribution_name(action_space)
    factory = registry.load(registry.DISTRIBUTIONS, name)
    check_kwargs(
        factory,
        config.distribution_kwargs,
        "policy.distribution_kwargs",
        f"distribution '{name}'",
        positional=1,
    )
    try:
        head = factory(action_space, **config.distribution_kwargs)
    except TypeError as error:
        raise ConfigError(
            f"policy.distribution_kwargs: distribution '{name}' rejected "
            f"{dict(config.distribution_kwargs)}: {error}"
        ) from error
    check_head(head, name)
    return head


def build_estimator(config: AdvantageConfig) -> AdvantageEstimator:
    """Resolve ``advantage.estimator`` and build it with γ, λ and kwargs."""
    factory = registry.load(registry.ADVANTAGES, config.estimator)
    check_kwargs(
        factory,
        config.kwargs,
        "advantage.kwargs",
        f"estimator '{config.estimator}'",
        reserved=("gamma", "lam"),
    )
    check_passed_keywords(
        factory, ("gamma", "lam"), "advantage.estimator", registry.ADVANTAGES, config.estimator
    )
    try:
        estimator = factory(gamma=config.gamma, lam=config.lam, **config.kwargs)
    except TypeError as error:
        raise ConfigError(
            f"advantage.kwargs: estimator '{config.estimator}' rejected "
            f"{dict(config.kwargs)}: {error}"
        ) from error
    check_estimator(estimator, config.estimator)
    return estimator


def build_policy(config: ExperimentConfig, observation_dim: int, action_space: gym.Space) -> Policy:
    """π_θ: MLP (``policy.hidden``/``activation``) + distribution head."""
    head = build_distribution(config.policy, action_space)
    # A head that reads the last hidden features (gsde) gets them appended to the outputs.
    num_features = int(getattr(head, "num_features", 0))
    if num_features and (not config.policy.hidden or config.policy.hidden[-1] != num_features):
        raise ConfigError(
            f"policy.distribution '{config.policy.distribution}' reads {num_features} hidden "
            f"features but policy.hidden is {list(config.policy.hidden)}; set "
            "policy.distribution_kwargs.num_features to the last hidden width"
        )
    network = build_mlp(
        observation_dim,
        config.policy.hidden,
        head.num_inputs - num_features,
        activation=config.policy.activation,
        output_gain=0.01,
        seed=config.seed,
        name="policy_network",
        append_features=bool(num_features),
    )
    return Policy(network, head)


def build_value(config: ExperimentConfig, observation_dim: int) -> tuple[keras.Model, FusedAdam]:
    """V_φ network and its Adam optimizer."""
    network = build_mlp(
        observation_dim,
        config.value.hidden,
        1,
        activation=config.value.activation,
        output_gain=1.0,
        seed=config.seed + 7919,
        name="value_network",
    )
    return network, FusedAdam(learning_rate=config.value.learning_rate)
