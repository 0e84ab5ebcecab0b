"""Export a trained agent as a SavedModel that needs nothing but TensorFlow to serve.

The SavedModel holds one :class:`tf.Module` with four serving signatures. Each
policy/value signature takes **raw** environment observations ``[batch, obs_dim]``
float32 (already flattened to a vector, as :mod:`trpo_tf.envs` does) and bakes in
everything between the environment and the networks:

* ``action(observation) -> {"action"}``: the deterministic (mode) action, ready
  for ``env.step`` — clipped to the Box bounds and reshaped to the Box shape, or
  the Discrete index plus ``start`` as int64.
* ``sample(observation) -> {"action", "log_prob"}``: a stochastic action, env-ready
  like ``action``; ``log_prob`` ``[batch]`` is log π(a|s) of the raw (unclipped)
  sample.
* ``value(observation) -> {"value"}``: V(s) ``[batch]``.
* ``metadata() -> {"metadata"}``: a JSON string (see below).

Observation normalization o ↦ clip((o − μ) / √(σ² + ε), ±clip) is applied inside
the graph with the run's frozen statistics as constants.

The metadata JSON — the observation and action spaces, the experiment name and
the environment id and kwargs — is also written as ``metadata.json`` next to
``saved_model.pb``::

    RUN_DIR/export/
      saved_model.pb, variables/   the SavedModel
      metadata.json                spaces, env id, experiment name
      policy.tflite                with ``--format tflite``: the ``action`` signature

Serving in a process without trpo_tf or TensorFlow Probability::

    model = tf.saved_model.load("RUN_DIR/export")
    actions = model.action(observations)["action"]
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf

from trpo_tf.errors import IncompatibleSpaceError, RunDirError, TrpoTfError

METADATA_FILE = "metadata.json"
TFLITE_FILE = "policy.tflite"
FORMAT_VERSION = 1
FORMATS = ("savedmodel", "tflite")


class ExportError(TrpoTfError, RuntimeError):
    """An export could not be written or failed its numerical check."""


# --------------------------------------------------------------------------- spaces


def _json_number(value: float | int) -> float | int | str:
    """JSON has no infinity: unbounded Box limits are written ``"inf"`` / ``"-inf"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf"
    return value


def _json_array(array: np.ndarray) -> Any:
    if array.ndim == 0:
        return _json_number(array.item())
    return [_json_array(item) for item in array]


def _from_json_array(data: Any, dtype: np.dtype) -> np.ndarray:
    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(x) for x in item]
        return float(item) if isinstance(item, str) else item

    return np.asarray(convert(data), dtype=dtype)


def space_to_json(space: gym.Space) -> dict[str, Any]:
    """A small JSON description of a Box, Discrete, MultiDiscrete or MultiBinary space.

    Box: ``{"type": "Box", "shape", "dtype", "low", "high"}`` (nested lists with
    the space's shape; infinite limits as ``"inf"``/``"-inf"``).
    Discrete: ``{"type": "Discrete", "shape": [], "dtype", "n", "start"}``.
    MultiDiscrete: ``{"type": "MultiDiscrete", "shape", "dtype", "nvec", "start"}``.
    MultiBinary: ``{"type": "MultiBinary", "shape", "dtype"}``.

    Raises:
        IncompatibleSpaceError: any other space.
    """
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "shape": [int(d) for d in space.shape],
            "dtype": np.dtype(space.dtype).name,
            "nvec": np.asarray(space.nvec).tolist(),
            "start": np.asarray(space.start).tolist(),
        }
    if isinstance(space, gym.spaces.MultiBinary):
        return {
            "type": "MultiBinary",
            "shape": [int(d) for d in space.shape],
            "dtype": np.dtype(space.dtype).name,
        }
    if isinstance(space, gym.spaces.Discrete):
        return {
            "type": "Discrete",
            "shape": [],
            "dtype": np.dtype(space.dtype).name,
            "n": int(space.n),
            "start": int(space.start),
        }
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": [int(d) for d in space.shape],
            "dtype": np.dtype(space.dtype).name,
            "low": _json_array(np.asarray(space.low)),
            "high": _json_array(np.asarray(space.high)),
        }
    raise IncompatibleSpaceError(
        f"export supports Box, Discrete, MultiDiscrete and MultiBinary spaces, not {space}; "
        "serve this policy from the run directory instead"
    )


def space_from_json(data: Mapping[str, Any]) -> gym.Space:
    """Inverse of :func:`space_to_json`."""
    dtype = np.dtype(data["dtype"])
    if data["type"] == "Discrete":
        return gym.spaces.Discrete(int(data["n"]), start=int(data["start"]))
    if data["type"] == "Box":
        return gym.spaces.Box(
            _from_json_array(data["low"], dtype),
            _from_json_array(data["high"], dtype),
            tuple(data["shape"]),
            dtype,
        )
    if data["type"] == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(
            np.asarray(data["nvec"], dtype), dtype=dtype, start=np.asarray(data["start"], dtype)
        )
    if data["type"] == "MultiBinary":
        shape = tuple(data["shape"])
        return gym.spaces.MultiBinary(list(shape) if len(shape) > 1 else shape[0])
    raise ValueError(f"unknown space type {data['type']!r} in export metadata")


# --------------------------------------------------------------------------- graph pieces


def _env_action_fn(head: Any, action_space: gym.Space) -> Callable[[tf.Tensor], tf.Tensor]:
    """The graph form of ``head.to_env_action`` for the exported signatures.

    A head with its own ``to_env_action_graph`` uses it. The built-in heads map by
    the action space (below). A plug-in head that overrides ``to_env_action`` without
    a graph twin cannot be exported faithfully: that raises rather than exporting
    actions the head would never send to ``env.step``.

    Raises:
        IncompatibleSpaceError: as above, or an unsupported action space.
    """
    graph_twin = getattr(head, "to_env_action_graph", None)
    if graph_twin is not None:
        return graph_twin
    defined_in = getattr(type(head).to_env_action, "__module__", "")
    if not defined_in.startswith("trpo_tf.distributions"):
        raise IncompatibleSpaceError(
            f"cannot export: distribution head {type(head).__name__} ({defined_in}) maps actions "
            "in to_env_action() but has no to_env_action_graph(actions: tf.Tensor) -> tf.Tensor "
            "twin; add one (docs/plugins.md) so the SavedModel returns the same env actions"
        )
    return _space_action_fn(action_space)


def _space_action_fn(action_space: gym.Space) -> Callable[[tf.Tensor], tf.Tensor]:
    """Graph twin of the built-in heads' ``to_env_action`` for ``action_space``.

    Discrete: ``int64(a) + start``. Box: clip to ``[low, high]``, reshape to
    ``[batch, *shape]`` and cast to the space's dtype. MultiDiscrete: indices plus
    ``start``, reshaped and cast. MultiBinary: reshaped and cast.
    """
    if isinstance(action_space, gym.spaces.Discrete):
        start = int(action_space.start)
        return lambda actions: tf.cast(actions, tf.int64) + tf.constant(start, tf.int64)
    if isinstance(action_space, gym.spaces.MultiDiscrete | gym.spaces.MultiBinary):
        shape = [int(d) for d in action_space.shape]
        dtype = tf.as_dtype(action_space.dtype)
        start = np.asarray(getattr(action_space, "start", 0), np.int64).reshape(-1)

        def to_env_multi(actions: tf.Tensor) -> tf.Tensor:
            shifted = tf.cast(actions, tf.int64) + tf.constant(start)
            return tf.cast(tf.reshape(shifted, [-1, *shape]), dtype)

        return to_env_multi
    if isinstance(action_space, gym.spaces.Box):
        shape = [int(d) for d in action_space.shape]
        dtype = tf.as_dtype(action_space.dtype)
        low = np.asarray(action_space.low, np.float64).reshape(-1)
        high = np.asarray(action_space.high, np.float64).reshape(-1)

        def to_env(actions: tf.Tensor) -> tf.Tensor:
            clipped = tf.clip_by_value(
                actions, tf.constant(low, actions.dtype), tf.constant(high, actions.dtype)
            )
            return tf.cast(tf.reshape(clipped, [-1, *shape]), dtype)

        return to_env
    raise IncompatibleSpaceError(
        f"export supports Box, Discrete, MultiDiscrete and MultiBinary action spaces, "
        f"not {action_space}"
    )


class ExportedAgent(tf.Module):
    """What the SavedModel holds: networks, head variables and frozen constants.

    Args:
        policy: the agent's :class:`~trpo_tf.policy.Policy` (network + head).
        value_network: ``[batch, obs_dim] -> [batch, 1]``.
        observation_mean, observation_var: ``[obs_dim]`` normalizer statistics,
            or None when observation normalization is off.
        observation_clip, epsilon: the normalizer's clip and ε.
        action_space: the environment's action space (for the env-ready mapping).
        metadata_json: the JSON string returned by :meth:`metadata`.
    """

    def __init__(
        self,
        policy: Any,
        value_network: Any,
        observation_dim: int,
        observation_mean: np.ndarray | None,
        observation_var: np.ndarray | None,
        observation_clip: float,
        epsilon: float,
        action_space: gym.Space,
        metadata_json: str,
    ) -> None:
        super().__init__(name="trpo_tf_export")
        self.policy_network = policy.network
        self.head = policy.head
        self.value_network = value_network
        self._normalize = observation_mean is not None
        if self._normalize:
            # μ and √(σ² + ε) are computed in float64 like the numpy normalizer,
            # then rounded once to float32 for the graph.
            self._mean = np.asarray(observation_mean, np.float64).astype(np.float32)
            self._std = np.sqrt(np.asarray(observation_var, np.float64) + epsilon).astype(
                np.float32
            )
            self._clip = float(observation_clip)
        self._to_env = _env_action_fn(policy.head, action_space)
        self._metadata_json = metadata_json
        spec = tf.TensorSpec([None, observation_dim], tf.float32, name="observation")
        self.action = tf.function(self._action, input_signature=[spec], autograph=False)
        self.sample = tf.function(self._sample, input_signature=[spec], autograph=False)
        self.value = tf.function(self._value, input_signature=[spec], autograph=False)
        self.metadata = tf.function(self._metadata, input_signature=[], autograph=False)

    def _normalized(self, observation: tf.Tensor) -> tf.Tensor:
        if not self._normalize:
            return observation
        normalized = (observation - tf.constant(self._mean)) / tf.constant(self._std)
        return tf.clip_by_value(normalized, -self._clip, self._clip)

    def _params(self, observation: tf.Tensor) -> tf.Tensor:
        return self.head.params(self.policy_network(self._normalized(observation)))

    def _action(self, observation: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"action": self._to_env(self.head.mode(self._params(observation)))}

    def _sample(self, observation: tf.Tensor) -> dict[str, tf.Tensor]:
        distribution = self.head.distribution(self._params(observation))
        raw = distribution.sample()
        return {"action": self._to_env(raw), "log_prob": distribution.log_prob(raw)}

    def _value(self, observation: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"value": tf.squeeze(self.value_network(self._normalized(observation)), -1)}

    def _metadata(self) -> dict[str, tf.Tensor]:
        return {"metadata": tf.constant(self._metadata_json)}


# --------------------------------------------------------------------------- export


def export_metadata(config: Any, env_spec: Any, agent: Any) -> dict[str, Any]:
    """The metadata dict stored in the SavedModel and in ``metadata.json``."""
    from trpo_tf import __version__

    normalizer = agent.observation_normalizer
    return {
        "format_version": FORMAT_VERSION,
        "trpo_tf_version": __version__,
        "name": config.name,
        "seed": int(config.seed),
        "env": {"id": config.env.id, "kwargs": dict(config.env.kwargs)},
        "observation_dim": int(env_spec.observation_dim),
        "observation_space": space_to_json(env_spec.observation_space),
        "action_space": space_to_json(env_spec.action_space),
        "distribution": config.policy.distribution,
        "observation_normalization": {
            "enabled": bool(normalizer.enabled),
            "clip": float(normalizer.clip),
        },
        "signatures": {
            "action": "raw observation [batch, obs_dim] float32 -> deterministic env action",
            "sample": "raw observation -> stochastic env action, log_prob of the raw sample",
            "value": "raw observation -> V(s) [batch]",
            "metadata": "() -> this JSON",
        },
    }


def export_savedmodel(agent: Any, config: Any, env_spec: Any, out_dir: str | Path) -> Path:
    """Write ``agent`` as a TensorFlow-only SavedModel plus ``metadata.json``.

    Args:
        agent: a :class:`~trpo_tf.agent.Agent` (policy, value network, normalizer).
        config: the run's :class:`~trpo_tf.config.ExperimentConfig`.
        env_spec: :class:`~trpo_tf.envs.EnvSpec` of the training environment.
        out_dir: the SavedModel directory (created; an existing export is replaced).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
        IncompatibleSpaceError: the observation or action space cannot be exported, or
            the head maps actions in Python only (no ``to_env_action_graph``).
    """
    out_dir = Path(out_dir)
    metadata = export_metadata(config, env_spec, agent)
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
    )
    signatures = {
        "action": module.action.get_concrete_function(),
        "sample": module.sample.get_concrete_function(),
        "value": module.value.get_concrete_function(),
        "metadata": module.metadata.get_concrete_function(),
    }
    signatures["serving_default"] = signatures["action"]
    out_dir.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(module, str(out_dir), signatures=signatures)
    (out_dir / TFLITE_FILE).unlink(missing_ok=True)  # would be stale now
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return out_dir


def _check_observations(observation_dim: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.normal(0.0, 3.0, (batch, observation_dim)).astype(np.float32) for batch in (1, 7, 64)
    ]


def export_tflite(saved_model_dir: str | Path, out_path: str | Path) -> Path:
    """Convert the SavedModel's ``action`` signature to TFLite and check it.

    The converter reads the loaded SavedModel's concrete function (converting the
    in-memory module would leave Keras 3 weights uninitialised and output NaN).
    The TFLite model must then reproduce the SavedModel's actions on random
    observations (batch 1, 7 and 64) to 1e-5 (exactly for Discrete actions).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        ExportError: the conversion failed, or its outputs are non-finite or differ.
    """
    saved_model_dir, out_path = Path(saved_model_dir), Path(out_path)
    loaded = tf.saved_model.load(str(saved_model_dir))
    action_fn = loaded.signatures["action"]
    observation_dim = int(action_fn.structured_input_signature[1]["observation"].shape[-1])
    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([action_fn], loaded)
        flatbuffer = converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises many types
        raise ExportError(f"TFLite conversion of {saved_model_dir} failed: {error}") from error
    with warnings.catch_warnings():
        # tf.lite.Interpreter warns that it moves to ai_edge_litert; it still works.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner()
    for observations in _check_observations(observation_dim):
        expected = action_fn(observation=tf.constant(observations))["action"].numpy()
        got = runner(observation=observations)["action"]
        if np.issubdtype(expected.dtype, np.floating) and not np.all(np.isfinite(got)):
            raise ExportError(
                f"TFLite model of {saved_model_dir} outputs NaN/inf actions; not written"
            )
        exact = not np.issubdtype(expected.dtype, np.floating)
        if got.shape != expected.shape or not (
            np.array_equal(got, expected)
            if exact
            else np.allclose(got, expected, rtol=1e-5, atol=1e-5)
        ):
            worst = np.max(np.abs(np.asarray(got, np.float64) - expected), initial=0.0)
            raise ExportError(
                f"TFLite model of {saved_model_dir} disagrees with the SavedModel "
                f"(shape {got.shape} vs {expected.shape}, max |diff| {worst:.3g}); not written"
            )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(flatbuffer)
    return out_path


def export_run(
    run_dir: str | Path, out_dir: str | Path | None = None, format: str = "savedmodel"
) -> Path:
    """Export a finished run's final policy (what ``trpo-tf export`` runs).

    Args:
        run_dir: a run directory with ``config.yaml`` and ``policy/``.
        out_dir: where the SavedModel goes (default ``RUN_DIR/export``).
        format: ``savedmodel``, or ``tflite`` to also write ``OUT/policy.tflite``.

    Returns:
        The SavedModel directory, or the ``.tflite`` file for ``format="tflite"``.

    Raises:
        RunDirError: ``run_dir`` is not a finished run.
        ExportError: ``format`` is unknown or the TFLite check failed.
    """
    from trpo_tf.envs import describe, make_env_fn
    from trpo_tf.run_loading import load_run

    if format not in FORMATS:
        raise ExportError(f"export format must be one of {', '.join(FORMATS)}, got {format!r}")
    run_dir = Path(run_dir)
    config, agent = load_run(run_dir)
    spec = describe(config.env.id, make_env_fn(config.env.id, config.env.kwargs))
    out = export_savedmodel(agent, config, spec, Path(out_dir) if out_dir else run_dir / "export")
    if format == "tflite":
        return export_tflite(out, out / TFLITE_FILE)
    return out


# --------------------------------------------------------------------------- loading


def is_export_dir(path: str | Path) -> bool:
    """True when ``path`` holds an exported SavedModel (``saved_model.pb``)."""
    return (Path(path) / "saved_model.pb").is_file()


class LoadedExport:
    """An exported policy loaded for acting in its environment.

    Attributes:
        metadata: the export's metadata dict.
        module: the loaded SavedModel.
    """

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        if not is_export_dir(directory):
            raise RunDirError(f"{directory} is not an exported policy: no saved_model.pb in it")
        self.module = tf.saved_model.load(str(directory))
        metadata_file = directory / METADATA_FILE
        if metadata_file.is_file():
            self.metadata = json.loads(metadata_file.read_text())
        else:
            self.metadata = json.loads(self.module.metadata()["metadata"].numpy().decode())
        self._action = self.module.signatures["action"]

    def act(self, observations: np.ndarray) -> np.ndarray:
        """Raw flattened observations ``[n, obs_dim]`` -> env-ready actions."""
        batch = np.asarray(observations, np.float32).reshape(len(observations), -1)
        return self._action(observation=tf.constant(batch))["action"].numpy()

    def env_fn(self, **extra_kwargs: Any) -> Callable[[], gym.Env]:
        """Constructor of the export's environment (metadata env id + kwargs)."""
        from trpo_tf.envs import make_env_fn

        env = self.metadata["env"]
        return make_env_fn(env["id"], {**env.get("kwargs", {}), **extra_kwargs})


class _EnvReadyActions:
    """``to_env_action`` for actions the export already made env-ready."""

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        return actions


def evaluate_export(export_dir: str | Path, episodes: int, seed: int) -> np.ndarray:
    """Deterministic returns ``[episodes]`` of an exported policy's ``action``."""
    from trpo_tf.evaluation import evaluate
    from trpo_tf.normalization import ObservationNormalizer

    loaded = LoadedExport(export_dir)
    passthrough = ObservationNormalizer((loaded.metadata["observation_dim"],), enabled=False)
    return evaluate(loaded.env_fn(), loaded.act, _EnvReadyActions(), passthrough, episodes, seed)
