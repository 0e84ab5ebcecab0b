"""Export a trained agent as a SavedModel that needs nothing but TensorFlow to serve.

The SavedModel holds one :class:`tf.Module` with seven serving signatures (four for
an :class:`~trpo_tf.envs.EnvSpec` without the env's own observation space). ``action``,
``sample`` and ``value`` take environment observations ``[batch, obs_dim]`` float32
flattened to a vector as :mod:`trpo_tf.envs` does (gymnasium's ``FlattenObservation``:
a Discrete observation is one-hot, so FrozenLake's is ``[batch, 16]``) and bakes in
everything between the environment and the networks:

* ``action(observation) -> {"action"}``: the deterministic (mode) action, ready
  for ``env.step`` — clipped to the Box bounds and reshaped to the Box shape, or
  the Discrete index plus ``start`` as int64.
* ``sample(observation) -> {"action", "log_prob"}``: a stochastic action, env-ready
  like ``action``; ``log_prob`` ``[batch]`` is log π(a|s) of the raw (unclipped)
  sample.
* ``value(observation) -> {"value"}``: V(s) ``[batch]``.
* ``metadata() -> {"metadata"}``: a JSON string (see below).
* ``env_action``, ``env_sample``, ``env_value``: the same three, taking the
  observation as the environment returns it (batched; a Dict or Tuple as one input
  per leaf) and flattening it in the graph (:mod:`trpo_tf.export.observations`). An
  image env takes ``[batch, H, W, C]`` uint8; a ``cnn`` network reshapes the flattened
  row back to the image and scales it inside the graph, as in training.

Observation normalization o ↦ clip((o − μ) / √(σ² + ε), ±clip) is applied inside
the graph with the run's frozen statistics as constants.

A recurrent policy (``lstm``, ``gru``) is exported functionally: the caller keeps its
state. Such an export adds

* ``initial_state(batch_size) -> {"policy_state_0": [batch_size, H_0], ...}``: the
  state at an episode's start (one tensor per ``policy.state_sizes``: LSTM h and c,
  GRU h), zeros for the built-in networks;

and its ``action``, ``sample``, ``env_action`` and ``env_sample`` take the state as
extra inputs ``policy_state_0``, ... ``[batch, H_i]`` (in Python, a dict as the second
argument: ``model.action(observations, state)``) and return the next state under the
same names beside ``action`` (and ``log_prob``). Any batch size; a row whose episode
ends is set back to ``initial_state``'s before the next episode's first step.
A recurrent value network (``value.network: {name: lstm}``) is exported the same way:
``initial_state`` also returns ``value_state_0``, ... (it exists when only V is
recurrent), and ``value``/``env_value`` take them as extra inputs and return the next
ones beside ``value``; a memoryless V's ``value`` takes the observation only, and a
memoryless policy's acting signatures take no state. ``metadata.json`` then has
``"recurrent": {"policy_state_names", "policy_state_sizes", "value_state_names",
"value_state_sizes", "bptt_length", "tflite"}`` (empty lists for a memoryless side),
and the TFLite models take and return the policy state the same way (V is not
converted to TFLite). :meth:`LoadedExport.predict` keeps the policy state between calls
for Python users.

The metadata JSON — the observation and action spaces, the experiment name and
the environment id and kwargs — is also written as ``metadata.json`` next to
``saved_model.pb``::

    RUN_DIR/export/
      saved_model.pb, variables/   the SavedModel
      metadata.json                spaces, env id, experiment name
      policy.tflite                with ``--format tflite``: the ``action`` signature
      policy_env.tflite            and the ``env_action`` signature

Serving in a process without trpo_tf or TensorFlow Probability::

    model = tf.saved_model.load("RUN_DIR/export")
    actions = model.action(observations)["action"]

    # a recurrent policy: carry the state, reset rows where an episode starts
    state = model.initial_state(tf.constant(n_envs))  # with a recurrent V: keep only
    state = {k: v for k, v in state.items() if k.startswith("policy_state_")}  # these
    outputs = model.action(observations, state)
    actions, state = outputs["action"], {name: outputs[name] for name in state}
"""

from trpo_tf.errors import ExportError
from trpo_tf.export.loading import (
    LoadedExport,
    PolicyStateError,
    evaluate_export,
    is_export_dir,
    load_policy,
)
from trpo_tf.export.metadata import FORMAT_VERSION, METADATA_FILE, export_metadata
from trpo_tf.export.module import ExportedAgent
from trpo_tf.export.spaces import space_from_json, space_to_json
from trpo_tf.export.tflite import ENV_TFLITE_FILE, TFLITE_FILE, export_tflite
from trpo_tf.export.writer import FORMATS, export_run, export_savedmodel

__all__ = [
    "ENV_TFLITE_FILE",
    "FORMATS",
    "FORMAT_VERSION",
    "METADATA_FILE",
    "TFLITE_FILE",
    "ExportError",
    "ExportedAgent",
    "LoadedExport",
    "PolicyStateError",
    "evaluate_export",
    "export_metadata",
    "export_run",
    "export_savedmodel",
    "export_tflite",
    "is_export_dir",
    "load_policy",
    "space_from_json",
    "space_to_json",
]
