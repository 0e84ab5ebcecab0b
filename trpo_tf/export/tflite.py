"""TFLite from an export's SavedModel, checked numerically before it is written.

Each model must reproduce the SavedModel's actions on sample observations; a model
that does not (TFLite converted from a Keras 3 module can silently output NaN) is
never written.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf

from trpo_tf import atomic
from trpo_tf.errors import ExportError
from trpo_tf.export.module import signature_state_names
from trpo_tf.export.observations import observation_leaves
from trpo_tf.export.spaces import space_from_json

TFLITE_FILE = "policy.tflite"
ENV_TFLITE_FILE = "policy_env.tflite"  # the env_action signature


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
