"""The one place where names from an experiment become objects.

Everything below this module takes plain values; plug-in names are resolved here
through :mod:`trpo_tf.registry`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import keras
import numpy as np

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
from trpo_tf.interfaces import AdvantageEstimator, DistributionHead, NetworkSpec
from trpo_tf.networks.rnn import is_recurrent
from trpo_tf.plugin_errors import (
    GuardedEstimator,
    guard_head,
    one_line,
    plugin_broke,
    plugin_raised,
)
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


DEFAULT_NETWORK = "mlp"
"""The network of ``policy.network: {}`` (and of a mapping without ``name``)."""

LAYER_KEYS = ("hidden", "activation")
"""Keys of ``policy``/``value`` that every network takes through :class:`NetworkSpec`."""


@dataclass(frozen=True)
class NetworkChoice:
    """A ``policy.network`` / ``value.network`` mapping, read.

    Attributes:
        key: the config key it came from, for messages (``value.network`` reads
            ``policy.network`` when it is empty).
        name: the ``trpo_tf.networks`` name (``mlp`` when the mapping has none).
        kwargs: the mapping's other keys, the factory's keyword arguments.
    """

    key: str
    name: str
    kwargs: dict[str, Any]


def network_choice(config: ExperimentConfig, role: str) -> NetworkChoice:
    """Which network ``role`` (``policy`` or ``value``) uses, and its keywords.

    ``value.network: {}`` (the default) is the policy's network with the same keywords;
    either network built from its own section's ``hidden`` and ``activation``.

    Raises:
        ConfigError: ``name`` is not a string, or the mapping repeats ``hidden`` or
            ``activation`` (they belong to the section: one place for the layers).
    """
    mapping, key, section = config.policy.network, "policy.network", "policy"
    if role == "value":
        section = "value"
        if config.value.network:
            mapping, key = config.value.network, "value.network"
    name = mapping.get("name", DEFAULT_NETWORK)
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"{key}.name must be the name of a network (trpo_tf.networks), got {name!r}"
        )
    for layer_key in LAYER_KEYS:
        if layer_key in mapping:
            raise ConfigError(
                f"{key}.{layer_key} conflicts with {section}.{layer_key}: every network takes "
                f"its fully connected layers from {section}.hidden and {section}.activation; "
                f"set {section}.{layer_key} and remove {key}.{layer_key}"
            )
    kwargs = {k: v for k, v in mapping.items() if k != "name"}
    return NetworkChoice(key, name, kwargs)


def needs_observation_space(config: ExperimentConfig) -> bool:
    """Whether a network other than ``mlp`` is used (it may read the observation shape)."""
    names = {network_choice(config, role).name for role in ("policy", "value")}
    return names != {DEFAULT_NETWORK}


def env_observation_space(config: ExperimentConfig) -> gym.Space:
    """The env's own observation space (before flattening), from one env made and closed."""
    from trpo_tf.envs import describe, make_env_fn

    env_fn = make_env_fn(config.env.id, config.env.kwargs, config.env.max_episode_steps)
    spec = describe(config.env.id, env_fn)
    return spec.env_observation_space or spec.observation_space


def _flat_space(observation_dim: int) -> gym.Space:
    return gym.spaces.Box(-np.inf, np.inf, (int(observation_dim),), np.float32)


def build_network(choice: NetworkChoice, spec: NetworkSpec) -> keras.Model:
    """Resolve ``choice.name`` in ``trpo_tf.networks`` and build it for ``spec``.

    Raises:
        RegistryError: the name is unknown (with the closest), provided twice, or fails
            to import.
        ConfigError: a keyword the factory does not take (with the closest), a
            ``TypeError`` for the keywords given, or the factory's own ConfigError
            (prefixed with the key).
        PluginError: the factory raised anything else, or returned no Keras model.
    """
    factory = registry.load(registry.NETWORKS, choice.name)
    check_kwargs(factory, choice.kwargs, choice.key, f"network '{choice.name}'", positional=1)
    try:
        network = factory(spec, **choice.kwargs)
    except ConfigError as error:
        if str(error).startswith(choice.key):
            raise
        raise ConfigError(f"{choice.key}: {error}") from error
    except TrpoTfError:
        raise  # the plug-in's own message for users
    except Exception as error:  # noqa: BLE001 - any failure inside the plug-in is named
        raise _factory_failed(
            error,
            registry.NETWORKS,
            choice.name,
            choice.key,
            choice.key,
            choice.kwargs,
            f"factory(spec, **{choice.key})",
        ) from error
    if not isinstance(network, keras.Model):
        raise plugin_broke(
            choice.key,
            registry.NETWORKS,
            choice.name,
            "NetworkFactory",
            f"factory(spec) returned {type(network).__name__}, not a keras.Model; return a "
            "built model [batch, observation_dim] -> [batch, output_width]",
        )
    return network


def policy_network_spec(
    config: ExperimentConfig,
    head: DistributionHead,
    observation_dim: int,
    observation_space: gym.Space | None = None,
) -> tuple[NetworkChoice, NetworkSpec]:
    """The policy network's choice and spec, sized for ``head``.

    Raises:
        ConfigError: the head reads hidden features (``num_features``, as ``gsde``) that
            ``policy.hidden[-1]`` does not provide, or a malformed ``policy.network``.
    """
    # A head that reads the last hidden features (gsde) gets them appended to the outputs.
    num_features = int(getattr(head, "num_features", 0))
    if num_features and (not config.policy.hidden or config.policy.hidden[-1] != num_features):
        raise ConfigError(
            f"policy.distribution '{config.policy.distribution}' reads {num_features} hidden "
            f"features but policy.hidden is {list(config.policy.hidden)}; set "
            "policy.distribution_kwargs.num_features to the last hidden width"
        )
    choice = network_choice(config, "policy")
    spec = NetworkSpec(
        observation_space=_observation_space(config, choice, observation_dim, observation_space),
        observation_dim=int(observation_dim),
        output_dim=head.num_inputs - num_features,
        hidden=tuple(config.policy.hidden),
        activation=config.policy.activation,
        output_gain=0.01,
        seed=config.seed,
        name="policy_network",
        append_features=bool(num_features),
        normalized_observations=config.env.normalize_obs,
    )
    return choice, spec


def value_network_spec(
    config: ExperimentConfig, observation_dim: int, observation_space: gym.Space | None = None
) -> tuple[NetworkChoice, NetworkSpec]:
    """The value network's choice (``value.network``, else the policy's) and spec."""
    choice = network_choice(config, "value")
    spec = NetworkSpec(
        observation_space=_observation_space(config, choice, observation_dim, observation_space),
        observation_dim=int(observation_dim),
        output_dim=1,
        hidden=tuple(config.value.hidden),
        activation=config.value.activation,
        output_gain=1.0,
        seed=config.seed + 7919,
        name="value_network",
        normalized_observations=config.env.normalize_obs,
    )
    return choice, spec


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


def check_recurrent_network(config: ExperimentConfig, choice: NetworkChoice) -> None:
    """What a recurrent network (policy or V) needs of the rest of the experiment.

    The ``async`` and ``ray`` runners' workers step segments of exactly the steps per
    env, so the same divisibility keeps every training sequence inside one segment (one
    worker's env, one β); whether the workers can run the network in numpy is checked
    when the runner is built (``rollout/runners.py: check_mirrorable``).

    Raises:
        ConfigError: ``trainer.bptt_length`` does not divide the steps per env.
    """
    steps_per_env = config.trainer.steps_per_iteration // config.env.n_envs
    length = config.trainer.bptt_length
    if steps_per_env % length:
        divisors = [d for d in range(1, min(steps_per_env, 64) + 1) if steps_per_env % d == 0]
        raise ConfigError(
            f"trainer.bptt_length must divide the steps per env (trainer.steps_per_iteration "
            f"/ env.n_envs = {steps_per_env}) for the recurrent network '{choice.name}' "
            f"({choice.key}), got {length}; set it to one of {divisors[-4:]}"
        )


def check_recurrent_value(config: ExperimentConfig, choice: NetworkChoice) -> None:
    """What a recurrent value network needs: sequences that divide the rollout, and the
    synchronous runner (V's state is carried from one rollout to the next per env).

    Raises:
        ConfigError: naming the key to change.
    """
    check_recurrent_network(config, choice)
    if config.runner.kind != "sync":
        raise ConfigError(
            f"value.network: a recurrent value network ('{choice.name}') runs with "
            f"runner.kind: sync only, got {config.runner.kind}; use a memoryless value "
            "network ({name: mlp}) with asynchronous workers"
        )


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
        spec = dataclasses.replace(spec, observation_space=_flat_space(observation_dim))
        network = build_network(choice, spec)
    return network, FusedAdam(learning_rate=config.value.learning_rate)


def _observation_space(
    config: ExperimentConfig,
    choice: NetworkChoice,
    observation_dim: int,
    observation_space: gym.Space | None,
) -> gym.Space:
    """The space a network is told about; the mlp ignores it, so no env is made for it."""
    if observation_space is not None:
        return observation_space
    if choice.name == DEFAULT_NETWORK:
        return _flat_space(observation_dim)
    return env_observation_space(config)
