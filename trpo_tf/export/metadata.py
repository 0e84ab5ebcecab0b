"""What an export says of itself: ``metadata.json`` (also stored in the SavedModel).

The format version, the spaces, the normalizer, the signatures with what each takes
and returns, the networks, and for a recurrent policy or value its state.
"""

from __future__ import annotations

from typing import Any

from trpo_tf.errors import IncompatibleSpaceError
from trpo_tf.export.module import VALUE_STATE_PREFIX, state_names, value_state_sizes
from trpo_tf.export.observations import env_observation_inputs
from trpo_tf.export.spaces import space_to_json

METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1


def export_metadata(
    config: Any, env_spec: Any, agent: Any, policy_label: str = "final"
) -> dict[str, Any]:
    """The metadata dict stored in the SavedModel and in ``metadata.json``.

    ``policy_label`` says which policy of the run this is: ``final`` (the policy
    after the last iteration) or ``best (...)`` (``eval.keep_best``).

    A recurrent policy or value network adds ``recurrent``: ``policy_state_names`` (the
    state inputs and outputs of the acting signatures), ``policy_state_sizes``,
    ``value_state_names``/``value_state_sizes`` (those of ``value``/``env_value``; empty
    lists for a memoryless network of either), the run's ``bptt_length`` and a ``tflite``
    note; its ``signatures`` descriptions name the state. An export with neither
    recurrent has no ``recurrent`` key.
    """
    from trpo_tf import __version__

    normalizer = agent.observation_normalizer
    env_space, env_entries = _servable_env_space(env_spec)
    state_sizes = [int(size) for size in agent.policy.state_sizes]
    value_sizes = list(value_state_sizes(agent.value_network))
    return {
        "format_version": FORMAT_VERSION,
        "trpo_tf_version": __version__,
        "name": config.name,
        "policy": policy_label,
        "seed": int(config.seed),
        "env": {
            "id": config.env.id,
            "kwargs": dict(config.env.kwargs),
            "clip_nonfinite": bool(config.env.clip_nonfinite),
            "max_episode_steps": config.env.max_episode_steps,
        },
        "observation_dim": int(env_spec.observation_dim),
        "observation_space": space_to_json(env_spec.observation_space),
        **env_entries,
        "action_space": space_to_json(env_spec.action_space),
        "distribution": config.policy.distribution,
        # The torsos: the flat and env_* signatures feed both the same flattened rows.
        "networks": _network_names(config, agent),
        "observation_normalization": {
            "enabled": bool(normalizer.enabled),
            "clip": float(normalizer.clip),
        },
        # Only a recurrent policy's or V's metadata has the key: memoryless exports are
        # unchanged.
        **(
            {"recurrent": _recurrent_entry(config, state_sizes, value_sizes)}
            if state_sizes or value_sizes
            else {}
        ),
        "signatures": (
            _recurrent_signatures(state_sizes, value_sizes, env_space is not None)
            if state_sizes or value_sizes
            else _signatures(env_space is not None)
        ),
    }


def _signatures(with_env: bool) -> dict[str, str]:
    """What each signature of a memoryless export takes and returns."""
    return {
        "action": "raw observation [batch, obs_dim] float32 -> deterministic env action",
        "sample": "raw observation -> stochastic env action, log_prob of the raw sample",
        "value": "raw observation -> V(s) [batch]",
        "metadata": "() -> this JSON",
        **(
            {
                "env_action": "env observation (env_observation_inputs) -> as action",
                "env_sample": "env observation -> as sample",
                "env_value": "env observation -> as value",
            }
            if with_env
            else {}
        ),
    }


def _recurrent_entry(config: Any, state_sizes: list[int], value_sizes: list[int]) -> dict[str, Any]:
    """``metadata["recurrent"]``: the policy's and V's state tensors (empty lists for a
    memoryless one), the training sequence length, and what the TFLite models carry."""
    policy_tflite = (
        "policy.tflite / policy_env.tflite take and return the policy state like action"
        if state_sizes
        else "policy.tflite / policy_env.tflite are memoryless like action"
    )
    value_tflite = (
        "; V is not converted to TFLite (only action/env_action are): its state is served "
        "by the SavedModel's value/env_value"
        if value_sizes
        else ""
    )
    return {
        "policy_state_names": state_names(len(state_sizes)),
        "policy_state_sizes": state_sizes,
        "value_state_names": state_names(len(value_sizes), VALUE_STATE_PREFIX),
        "value_state_sizes": value_sizes,
        "bptt_length": int(config.trainer.bptt_length),
        "tflite": policy_tflite + value_tflite,
    }


def _state_text(names: list[str], sizes: list[int]) -> str:
    """``"policy_state_0 [batch, H], ..."``."""
    return ", ".join(f"{name} [batch, {size}]" for name, size in zip(names, sizes, strict=True))


def _recurrent_signatures(
    state_sizes: list[int], value_sizes: list[int], with_env: bool
) -> dict[str, str]:
    """What each signature takes and returns when the policy or V (or both) is recurrent.

    A memoryless side keeps the descriptions of a memoryless export, marked as such.
    """
    names = state_names(len(state_sizes))
    value_names = state_names(len(value_sizes), VALUE_STATE_PREFIX)
    initial = ", ".join(
        text
        for text in (_state_text(names, state_sizes), _state_text(value_names, value_sizes))
        if text
    )
    if state_sizes:
        state, outputs = _state_text(names, state_sizes), ", ".join(names)
        acting = {
            "action": f"raw observation [batch, obs_dim] float32, {state} -> deterministic "
            f"env action, the next {outputs}",
            "sample": f"raw observation, {outputs} -> stochastic env action, log_prob of the "
            f"raw sample, the next {outputs}",
        }
        env_acting = {
            "env_action": f"env observation (env_observation_inputs), {outputs} -> as action",
            "env_sample": f"env observation, {outputs} -> as sample",
        }
    else:
        acting = {
            "action": "raw observation [batch, obs_dim] float32 -> deterministic env action "
            "(memoryless policy: no state)",
            "sample": "raw observation -> stochastic env action, log_prob of the raw sample "
            "(memoryless policy: no state)",
        }
        env_acting = {
            "env_action": "env observation (env_observation_inputs) -> as action",
            "env_sample": "env observation -> as sample",
        }
    if value_sizes:
        value_state, value_outputs = _state_text(value_names, value_sizes), ", ".join(value_names)
        value = {
            "value": f"raw observation [batch, obs_dim] float32, {value_state} -> V(s) [batch], "
            f"the next {value_outputs}"
        }
        env_value = {"env_value": f"env observation, {value_outputs} -> as value"}
    else:
        value = {"value": "raw observation -> V(s) [batch] (memoryless: no state)"}
        env_value = {"env_value": "env observation -> as value"}
    return {
        "initial_state": f"batch_size int32 scalar -> {initial} float32: the state at an "
        "episode's start",
        **acting,
        **value,
        "metadata": "() -> this JSON",
        **({**env_acting, **env_value} if with_env else {}),
    }


def _network_names(config: Any, agent: Any) -> dict[str, str]:
    """``{"policy": name, "value": name}`` of ``trpo_tf.networks`` (``mlp`` by default).

    Beside a recurrent policy, ``value.network: {}`` builds an ``mlp``
    (``config.build.build_value``), not the policy's network again; a recurrent V is
    named explicitly (``value.network: {name: lstm}``).
    """
    from trpo_tf.config.build_networks import DEFAULT_NETWORK, network_choice

    names = {role: network_choice(config, role).name for role in ("policy", "value")}
    if agent.policy.recurrent and not config.value.network:
        names["value"] = DEFAULT_NETWORK
    return names


def _servable_env_space(env_spec: Any) -> tuple[Any, dict[str, Any]]:
    """The env's own observation space if the ``env_*`` signatures can take it, and
    its metadata entries; else None and the reason (the export keeps its flattened
    signatures either way)."""
    space = env_spec.env_observation_space
    if space is None:
        return None, {}
    try:
        specs, _ = env_observation_inputs(space)
        space_json = space_to_json(space)
    except IncompatibleSpaceError as error:
        return None, {"env_signatures_unavailable": str(error)}
    # A list: the metadata is written with sorted keys, and the order is the flattening's.
    inputs = [
        {"name": name, "shape": [None, *spec.shape[1:].as_list()], "dtype": spec.dtype.name}
        for name, spec in specs.items()
    ]
    return space, {"env_observation_space": space_json, "env_observation_inputs": inputs}
