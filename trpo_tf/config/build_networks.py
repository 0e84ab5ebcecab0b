"""The networks an experiment names: which one each role uses, its spec, and building it.

``policy.network`` / ``value.network`` are read into a :class:`NetworkChoice`; the
policy's and the value's :class:`~trpo_tf.interfaces.NetworkSpec` are sized from the
experiment; :func:`build_network` resolves the name in ``trpo_tf.networks``, and the
recurrent checks say what a network with memory needs of the rest of the experiment.
:mod:`trpo_tf.config.build` puts these together with the distribution head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import keras
import numpy as np

from trpo_tf import registry
from trpo_tf.config.contracts import check_kwargs
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.errors import ConfigError, TrpoTfError
from trpo_tf.interfaces import DistributionHead, NetworkSpec
from trpo_tf.plugin_errors import factory_failed, plugin_broke

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


def flat_space(observation_dim: int) -> gym.Space:
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
        raise factory_failed(
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
        return flat_space(observation_dim)
    return env_observation_space(config)
