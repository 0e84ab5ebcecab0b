"""Writing exports: the SavedModel with its metadata, the TFLite model, from a run."""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf

from trpo_tf import atomic
from trpo_tf.errors import IncompatibleSpaceError, TrpoTfError
from trpo_tf.export.module import (
    VALUE_STATE_PREFIX,
    ExportedAgent,
    signature_state_names,
    state_names,
    value_state_sizes,
)
from trpo_tf.export.observations import env_observation_inputs, observation_leaves
from trpo_tf.export.spaces import space_from_json, space_to_json

METADATA_FILE = "metadata.json"
TFLITE_FILE = "policy.tflite"
ENV_TFLITE_FILE = "policy_env.tflite"  # the env_action signature
FORMAT_VERSION = 1
FORMATS = ("savedmodel", "tflite")


class ExportError(TrpoTfError, RuntimeError):
    """An export could not be written or failed its numerical check."""


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
    from trpo_tf.config.build import DEFAULT_NETWORK, network_choice

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


def export_savedmodel(
    agent: Any, config: Any, env_spec: Any, out_dir: str | Path, policy_label: str = "final"
) -> Path:
    """Write ``agent`` as a TensorFlow-only SavedModel plus ``metadata.json``.

    Args:
        agent: a :class:`~trpo_tf.agent.Agent` (policy, value network, normalizer).
        config: the run's :class:`~trpo_tf.config.ExperimentConfig`.
        env_spec: :class:`~trpo_tf.envs.EnvSpec` of the training environment.
        out_dir: the SavedModel directory (created; an existing export is replaced).
        policy_label: which of the run's policies this is (metadata ``policy``).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
        IncompatibleSpaceError: the observation or action space cannot be exported, or
            the head maps actions in Python only (no ``to_env_action_graph``).
    """
    out_dir = Path(out_dir)
    metadata = export_metadata(config, env_spec, agent, policy_label)
    # The metadata lists the env_* inputs exactly when the env's space is servable.
    servable = "env_observation_inputs" in metadata
    env_space = env_spec.env_observation_space if servable else None
    normalizer = agent.observation_normalizer
    module = ExportedAgent(
        agent.policy,
        agent.value_network,
        observation_dim=int(env_spec.observation_dim),
        observation_mean=normalizer.stats.mean if normalizer.enabled else None,
        observation_var=normalizer.stats.var if normalizer.enabled else None,
        observation_clip=normalizer.clip,
        epsilon=normalizer.epsilon,
        action_space=env_spec.action_space,
        metadata_json=json.dumps(metadata, sort_keys=True),
        env_observation_space=env_space,
    )
    names = ["action", "sample", "value", "metadata"]
    if module.stateful:
        names.append("initial_state")
    if env_space is not None:
        names += ["env_action", "env_sample", "env_value"]
    signatures = {name: getattr(module, name).get_concrete_function() for name in names}
    signatures["serving_default"] = signatures["action"]
    text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"

    def fill(directory: Path) -> None:
        tf.saved_model.save(module, str(directory), signatures=signatures)
        (directory / METADATA_FILE).write_text(text)

    # Built beside out_dir and swapped in whole: an existing export (and any TFLite
    # file converted from it) is replaced, never merged into, and a kill mid-export
    # leaves the previous one.
    return atomic.build_dir(out_dir, fill, "export")


CHECK_BATCHES = (1, 7, 64)
CHECK_STEPS = 4
"""A recurrent policy's TFLite check steps each batch this many times, carrying the state."""


def _check_observations(
    observation_dim: int, seed: int = 0, steps: int = 1
) -> list[list[dict[str, np.ndarray]]]:
    """Inputs of the ``action`` signature: ``steps`` random flattened observations of
    each of 3 batch sizes."""
    rng = np.random.default_rng(seed)
    return [
        [
            {"observation": rng.normal(0.0, 3.0, (batch, observation_dim)).astype(np.float32)}
            for _ in range(steps)
        ]
        for batch in CHECK_BATCHES
    ]


def _check_env_observations(
    metadata: dict[str, Any], seed: int = 0, steps: int = 1
) -> list[list[dict[str, np.ndarray]]]:
    """Inputs of the ``env_action`` signature: ``steps`` samples of the env's observation
    space for each of 3 batch sizes.

    Float Box leaves are drawn from N(0, 3²) clipped to their bounds, as the flattened
    check draws its observations: a uniform sample of a wide Box (MuJoCo's are
    unbounded, others ±3.4e38) would only compare saturated units.
    """
    space = space_from_json(metadata["env_observation_space"])
    space.seed(seed)
    rng = np.random.default_rng(seed)
    sequences = []
    for batch in CHECK_BATCHES:
        sequence = []
        for _ in range(steps):
            rows = [observation_leaves(space, space.sample()) for _ in range(batch)]
            inputs = {}
            for i, entry in enumerate(metadata["env_observation_inputs"]):
                leaf = rows[0][i][0]
                values = np.stack([row[i][1] for row in rows])
                if isinstance(leaf, gym.spaces.Box) and np.issubdtype(leaf.dtype, np.floating):
                    values = np.clip(rng.normal(0.0, 3.0, values.shape), leaf.low, leaf.high)
                inputs[entry["name"]] = values.astype(entry["dtype"])
            sequence.append(inputs)
        sequences.append(sequence)
    return sequences


def _check_output(name: str, got: np.ndarray, expected: np.ndarray, source: Path) -> None:
    """TFLite's output ``name`` equals the SavedModel's: same shape, finite, and values
    to 1e-5 (exactly for integer outputs).

    Raises:
        ExportError: they differ, or TFLite's is NaN/inf.
    """
    floating = np.issubdtype(expected.dtype, np.floating)
    if floating and not np.all(np.isfinite(got)):
        raise ExportError(f"TFLite model of {source} outputs NaN/inf {name}; not written")
    if got.shape == expected.shape and (
        np.allclose(got, expected, rtol=1e-5, atol=1e-5)
        if floating
        else np.array_equal(got, expected)
    ):
        return
    worst = (
        np.max(np.abs(np.asarray(got, np.float64) - expected), initial=0.0)
        if got.shape == expected.shape
        else np.inf
    )
    raise ExportError(
        f"TFLite model of {source} disagrees with the SavedModel on {name} "
        f"(shape {got.shape} vs {expected.shape}, max |diff| {worst:.3g}); not written"
    )


def _checked_tflite(
    function: Any,
    loaded: Any,
    sequences: list[list[dict[str, np.ndarray]]],
    source: Path,
    state_names: list[str] | tuple[str, ...] = (),
) -> bytes:
    """``function`` (a loaded signature) as a TFLite flatbuffer that reproduces its actions.

    The converter reads the loaded SavedModel's concrete function (converting the
    in-memory module would leave Keras 3 weights uninitialised and output NaN).
    The TFLite model must reproduce the SavedModel's actions on every step of
    ``sequences`` to 1e-5 (exactly for integer actions). With ``state_names`` (a
    recurrent policy) each sequence starts from ``loaded.initial_state``, both models
    take the state the SavedModel carried to that step, and the next states must agree
    to 1e-5 as well.

    Raises:
        ExportError: the conversion failed, or its outputs are non-finite or differ.
    """
    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function], loaded)
        flatbuffer = converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises many types
        raise ExportError(f"TFLite conversion of {source} failed: {error}") from error
    with warnings.catch_warnings():
        # tf.lite.Interpreter warns that it moves to ai_edge_litert; it still works.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner()
    for sequence in sequences:
        state: dict[str, np.ndarray] = {}
        if state_names:
            batch = len(next(iter(sequence[0].values())))
            initial = loaded.signatures["initial_state"](batch_size=tf.constant(batch, tf.int32))
            state = {name: initial[name].numpy() for name in state_names}
        for step in sequence:
            inputs = {**step, **state}
            expected = function(**{k: tf.constant(v) for k, v in inputs.items()})
            got = runner(**inputs)
            for name in ("action", *state_names):
                _check_output(name, np.asarray(got[name]), expected[name].numpy(), source)
            state = {name: expected[name].numpy() for name in state_names}
    return flatbuffer


def export_tflite(saved_model_dir: str | Path, out_path: str | Path) -> Path:
    """Convert the SavedModel's ``action`` signature to TFLite and check it.

    An export with ``env_action`` also gets ``ENV_TFLITE_FILE`` next to ``out_path``:
    that signature, taking the env's own observations (its inputs as listed in
    ``metadata.json``), checked on samples of the env's observation space.
    Each model must reproduce the SavedModel's actions (batch 1, 7 and 64) to 1e-5,
    exactly for integer actions, or nothing is written.

    A recurrent policy's models take and return the state like its ``action``
    signature (``policy_state_0``, ... as extra inputs and outputs; the caller keeps
    the state and starts it from the SavedModel's ``initial_state``, zeros for the
    built-in ``lstm``/``gru``). They are checked over ``CHECK_STEPS`` steps per batch
    from the initial state: actions and next states. V is never converted (a recurrent
    V's state is served by the SavedModel's ``value``; metadata ``recurrent.tflite``).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        ExportError: a conversion failed, or its outputs are non-finite or differ.
    """
    saved_model_dir, out_path = Path(saved_model_dir), Path(out_path)
    loaded = tf.saved_model.load(str(saved_model_dir))
    action_fn = loaded.signatures["action"]
    observation_dim = int(action_fn.structured_input_signature[1]["observation"].shape[-1])
    names = signature_state_names(action_fn)
    steps = CHECK_STEPS if names else 1
    models = {
        out_path: _checked_tflite(
            action_fn,
            loaded,
            _check_observations(observation_dim, steps=steps),
            saved_model_dir,
            names,
        )
    }
    if "env_action" in loaded.signatures:
        metadata = json.loads(loaded.metadata()["metadata"].numpy().decode())
        models[out_path.with_name(ENV_TFLITE_FILE)] = _checked_tflite(
            loaded.signatures["env_action"],
            loaded,
            _check_env_observations(metadata, steps=steps),
            saved_model_dir,
            names,
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    for path, flatbuffer in models.items():
        atomic.write_bytes(path, flatbuffer, "TFLite export")
    return out_path


def export_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    format: str = "savedmodel",
    force: bool = False,
) -> Path:
    """Export a finished run's final policy (what ``trpo-tf export`` runs).

    Args:
        run_dir: a run directory with ``config.yaml`` and ``policy/``.
        out_dir: where the SavedModel goes (default ``RUN_DIR/export``, which a
            re-export replaces).
        format: ``savedmodel``, or ``tflite`` to also write ``OUT/policy.tflite``.
        force: overwrite an existing non-empty ``out_dir`` other than
            ``RUN_DIR/export`` (never a run directory).

    Returns:
        The SavedModel directory, or the ``.tflite`` file for ``format="tflite"``.

    Raises:
        RunDirError: ``run_dir`` is not a finished run.
        ExportError: ``format`` is unknown or the TFLite check failed.
        OutputPathError: ``out_dir`` is a file, a run directory, or (without
            ``force``) another non-empty directory.
    """
    from trpo_tf.envs import describe, make_env_fn
    from trpo_tf.outputs import check_export_dir, is_run_dir
    from trpo_tf.run.lock import locked
    from trpo_tf.run_loading import load_run

    if format not in FORMATS:
        raise ExportError(f"export format must be one of {', '.join(FORMATS)}, got {format!r}")
    run_dir = Path(run_dir)
    default = run_dir / "export"
    out = check_export_dir(out_dir if out_dir else default, default, force)
    # The run's lock: no export of a run that a live process is still writing.
    inside = out.resolve().is_relative_to(run_dir.resolve())
    lock = locked(run_dir, "trpo-tf export", writes_there=inside) if is_run_dir(run_dir) else None
    with lock or contextlib.nullcontext():
        config, agent = load_run(run_dir)
        spec = describe(
            config.env.id,
            make_env_fn(config.env.id, config.env.kwargs, config.env.max_episode_steps),
        )
        out = export_savedmodel(agent, config, spec, out)
        if format == "tflite":
            return export_tflite(out, out / TFLITE_FILE)
    return out
