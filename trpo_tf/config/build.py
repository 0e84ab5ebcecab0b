"""The one place where names from an experiment become objects.

Everything below this module takes plain values; plug-in names are resolved here
through :mod:`trpo_tf.registry`. The networks' part (which network, its spec, building
it) is :mod:`trpo_tf.config.build_networks`.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import keras

from trpo_tf import registry
from trpo_tf.config.build_networks import (
    DEFAULT_NETWORK,
    NetworkChoice,
    build_network,
    check_recurrent_network,
    check_recurrent_value,
    flat_space,
    policy_network_spec,
    value_network_spec,
)
from trpo_tf.config.contracts import (
    check_estimator,
    check_head,
    check_kwargs,
    check_passed_keywords,
)
from trpo_tf.config.schema import AdvantageConfig, ExperimentConfig, PolicyConfig
from trpo_tf.distributions.auto import auto_distribution_name
from trpo_tf.errors import TrpoTfError
from trpo_tf.interfaces import AdvantageEstimator, DistributionHead
from trpo_tf.networks.rnn import is_recurrent
from trpo_tf.plugin_errors import (
    GuardedEstimator,
    factory_failed,
    guard_head,
)
from trpo_tf.policy import Policy
from trpo_tf.trainer.adam import FusedAdam


def build_distribution(config: PolicyConfig, action_space: gym.Space) -> DistributionHead:
    """Resolve ``policy.distribution`` (or ``auto``) and build its head.

    The head's methods are guarded (:func:`trpo_tf.plugin_errors.guard_head`): what
    they raise, here or later in training, is one line naming the plug-in.

    Raises:
        RegistryError: the name is unknown, provided twice, or fails to import.
        ConfigError: ``policy.distribution_kwargs`` has a key the factory does not take,
            or the factory raised ``TypeError`` for them.
        PluginError: the factory raised anything else (naming the plug-in, its package,
            entry point and the exception), or returned no DistributionHead.
    """
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
    except TrpoTfError:
        raise  # the plug-in's own message for users (IncompatibleSpaceError, ConfigError)
    except Exception as error:  # noqa: BLE001 - any failure inside the plug-in is named
        raise factory_failed(
            error,
            registry.DISTRIBUTIONS,
            name,
            "policy.distribution",
            "policy.distribution_kwargs",
            config.distribution_kwargs,
            "factory(action_space, **policy.distribution_kwargs)",
        ) from error
    check_head(head, name)
    return guard_head(head, name)


def build_estimator(config: AdvantageConfig) -> AdvantageEstimator:
    """Resolve ``advantage.estimator`` and build it with γ, λ and kwargs.

    Returns the estimator in a :class:`~trpo_tf.plugin_errors.GuardedEstimator`: what
    it raises, and a result that is not ``[T, n_envs]`` AdvantageOutputs, is one line
    naming the plug-in at every call.

    Raises:
        RegistryError: the name is unknown, provided twice, or fails to import.
        ConfigError: ``advantage.kwargs`` has a key the factory does not take, or the
            factory raised ``TypeError`` for them.
        PluginError: the factory cannot take γ and λ, raised anything else, or
            returned something that is not callable.
    """
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
    except TrpoTfError:
        raise  # the plug-in's own message for users
    except Exception as error:  # noqa: BLE001 - any failure inside the plug-in is named
        raise factory_failed(
            error,
            registry.ADVANTAGES,
            config.estimator,
            "advantage.estimator",
            "advantage.kwargs",
            config.kwargs,
            "factory(gamma, lam, **advantage.kwargs)",
        ) from error
    check_estimator(estimator, config.estimator)
    return GuardedEstimator(estimator, config.estimator)


def build_policy(
    config: ExperimentConfig,
    observation_dim: int,
    action_space: gym.Space,
    observation_space: gym.Space | None = None,
) -> Policy:
    """π_θ: the ``policy.network`` torso (``mlp``: ``policy.hidden``/``activation``) + head.

    Args:
        config: the experiment.
        observation_dim: width of the flattened observations the network takes.
        action_space: the env's action space (the head's).
        observation_space: the env's own observation space, before flattening; None:
            read from a freshly made env when the network is not ``mlp``.
    """
    head = build_distribution(config.policy, action_space)
    choice, spec = policy_network_spec(config, head, observation_dim, observation_space)
    policy = Policy(build_network(choice, spec), head)
    if policy.recurrent:
        check_recurrent_network(config, choice)
    return policy


def build_value(
    config: ExperimentConfig, observation_dim: int, observation_space: gym.Space | None = None
) -> tuple[keras.Model, FusedAdam]:
    """V_φ (the ``value.network`` torso, by default the policy's) and its Adam optimizer.

    Beside a recurrent policy network, ``value.network: {}`` is an ``mlp`` of
    ``value.hidden``; a recurrent V is chosen explicitly (``value.network: {name: lstm}``).

    Raises:
        ConfigError: a recurrent ``value.network`` with settings it cannot run with
            (:func:`check_recurrent_value`).
    """
    choice, spec = value_network_spec(config, observation_dim, observation_space)
    network = build_network(choice, spec)
    if is_recurrent(network):
        if config.value.network:
            check_recurrent_value(config, choice)
            return network, FusedAdam(learning_rate=config.value.learning_rate)
        choice = NetworkChoice("value.network", DEFAULT_NETWORK, {})
        spec = dataclasses.replace(spec, observation_space=flat_space(observation_dim))
        network = build_network(choice, spec)
    return network, FusedAdam(learning_rate=config.value.learning_rate)
