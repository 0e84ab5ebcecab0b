"""The one place where names from an experiment become objects.

Everything below this module takes plain values; plug-in names are resolved here
through :mod:`trpo_tf.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import keras

from trpo_tf import registry
from trpo_tf.config.contracts import (
    check_estimator,
    check_head,
    check_kwargs,
    check_passed_keywords,
    describe_plugin,
)
from trpo_tf.config.schema import AdvantageConfig, ExperimentConfig, PolicyConfig
from trpo_tf.distributions.auto import auto_distribution_name
from trpo_tf.errors import ConfigError, TrpoTfError
from trpo_tf.interfaces import AdvantageEstimator, DistributionHead
from trpo_tf.networks import build_mlp
from trpo_tf.plugin_errors import GuardedEstimator, guard_head, one_line, plugin_raised
from trpo_tf.policy import Policy
from trpo_tf.trainer.adam import FusedAdam


def _factory_failed(
    error: Exception,
    group: str,
    name: str,
    key: str,
    kwargs_key: str,
    kwargs: Mapping[str, Any],
    call: str,
) -> TrpoTfError:
    """The one-line error for a plug-in factory that raised ``error``.

    A ``TypeError`` while config kwargs were passed is the kwargs' (a value of the
    wrong type): a :class:`ConfigError` naming ``kwargs_key``. Anything else is the
    plug-in's: a :class:`PluginError` naming it, its package and entry point.
    """
    if isinstance(error, TypeError) and kwargs:
        return ConfigError(
            f"{kwargs_key}: {describe_plugin(group, name)} rejected {dict(kwargs)}: "
            f"{one_line(error)}"
        )
    return plugin_raised(key, group, name, call, error)


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
        raise _factory_failed(
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
        raise _factory_failed(
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
