"""Checkpoint writes as one compiled call, in TensorFlow's own object-based format.

Run eagerly, ``tf.train.Checkpoint.write`` is ~80 small TensorFlow operations: a
read per variable, then a sharded save and a merge. Each eager operation takes
and releases the GIL, so beside a thread running Python (the rollout, while the
value fit's thread writes a periodic checkpoint) each one waits for a hand-over:
a CartPole-sized write took ~0.87 s beside a busy thread against ~10 ms alone
(`benchmarks/checkpoint_profile.py`).

:class:`CheckpointWriter` writes the same files with one call of a compiled
function that reads every variable and saves them with ``SaveV2`` under the
checkpoint keys and object graph that TensorFlow's own serializer produces. The
object graph is walked at every write (Python only, ~5 ms for an agent), so a
variable created after an earlier write (a new optimizer slot) is never left
out: a different walk builds a new function. Anything that is not a plain
variable read (a Python-state trackable, a sliced variable, a registered saver)
makes that write an ordinary ``Checkpoint.write``, as does a TensorFlow without
the serializer this relies on. Either way ``tf.train.Checkpoint.read`` restores
the files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from trpo_tf.trainer.tracing import traced_without_op_tracebacks

try:  # TensorFlow's checkpoint serializer (not public API; absent: eager writes)
    from tensorflow.python.checkpoint import save_util
    from tensorflow.python.checkpoint.tensor_callable import Callable as TensorCallable
    from tensorflow.python.ops import gen_io_ops
    from tensorflow.python.ops.gen_resource_variable_ops import read_variable_op
    from tensorflow.python.ops.resource_variable_ops import BaseResourceVariable
except ImportError:  # pragma: no cover - depends on the TensorFlow version
    save_util = None

# The key under which a checkpoint stores its serialized object graph.
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


@dataclass(frozen=True)
class _Plan:
    """What one write saves: a checkpoint key per variable, and the object graph."""

    keys: tuple[str, ...]
    variables: tuple[Any, ...]  # ResourceVariables (kept alive: the signature uses ids)
    object_graph: bytes

    @property
    def signature(self) -> tuple[Any, ...]:
        return self.object_graph, self.keys, tuple(id(v) for v in self.variables)


class CheckpointWriter:
    """Writes ``checkpoint`` to a file prefix, compiled where its contents allow.

    Args:
        checkpoint: the ``tf.train.Checkpoint`` whose objects are saved.

    Attributes:
        compiled: whether the last write went through the compiled function.
    """

    def __init__(self, checkpoint: tf.train.Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.compiled = False
        self._function: tuple[tuple[Any, ...], Callable[[tf.Tensor], Any]] | None = None

    def write(self, prefix: str) -> None:
        """Write ``prefix.index`` and ``prefix.data-*`` (what ``Checkpoint.write`` writes)."""
        plan = self._plan()
        self.compiled = plan is not None
        if plan is None:
            self.checkpoint.write(prefix)
            return
        if self._function is None or self._function[0] != plan.signature:
            self._function = (plan.signature, _compile(plan))
        # SaveV2 creates one missing directory level at most; Checkpoint.write all.
        tf.io.gfile.makedirs(os.path.dirname(prefix) or ".")
        self._function[1](tf.constant(prefix))

    def _plan(self) -> _Plan | None:
        saver = getattr(self.checkpoint, "_saver", None)
        serialize = getattr(save_util, "serialize_graph_view", None)
        if saver is None or serialize is None:
            return None
        try:
            tensors, feeds, registered_savers, graph = serialize(
                saver._graph_view, saver._object_map, cache=saver._cache
            )
        except (AttributeError, TypeError, ValueError):
            # Another TensorFlow's internals (the tests pin the compiled path on the
            # supported one): write the ordinary way rather than fail the run.
            return None
        if feeds or registered_savers:
            return None
        keys, variables = [], []
        for owner, entries in tensors.items():
            if not entries:  # a layer, a model: its variables are owners of their own
                continue
            variable = _plain_variable(owner)
            if variable is None:
                return None
            for key, value in entries.items():
                if not isinstance(value, TensorCallable):
                    return None
                keys.append(key)
                variables.append(variable)
        if OBJECT_GRAPH_KEY in keys:
            return None
        return _Plan(tuple(keys), tuple(variables), graph.SerializeToString())


def _plain_variable(owner: Any) -> Any:
    """The ResourceVariable a trackable saves as its value (a Keras variable's own), or None.

    Only variables that save themselves the standard way (one value, read when
    written) qualify; distributed, sharded or custom-serialized ones do not.
    """
    variable = owner if isinstance(owner, BaseResourceVariable) else getattr(owner, "value", None)
    standard = BaseResourceVariable._serialize_to_tensors
    if isinstance(variable, BaseResourceVariable) and (
        type(variable)._serialize_to_tensors is standard
    ):
        return variable
    return None


def _compile(plan: _Plan) -> Callable[[tf.Tensor], Any]:
    """``prefix -> prefix``: reads every variable of ``plan`` and saves them in one call."""
    names = [*plan.keys, OBJECT_GRAPH_KEY]

    def save(prefix: tf.Tensor) -> tf.Tensor:
        # One read per variable (what Checkpoint.write reads, without its copy-on-read
        # and identity operations: the save follows the reads inside this call).
        values = [read_variable_op(v.handle, v.dtype) for v in plan.variables]
        with tf.device("/cpu:0"):
            values.append(tf.constant(plan.object_graph, dtype=tf.string))
            # SaveV2 is not among the ops a tf.function keeps for their side effects:
            # the returned identity depends on it.
            saved = gen_io_ops.save_v2(prefix, names, [""] * len(names), values)
            with tf.control_dependencies([saved]):
                return tf.identity(prefix)

    return tf.function(
        traced_without_op_tracebacks(save),
        input_signature=[tf.TensorSpec([], tf.string)],
        autograph=False,
    ).get_concrete_function()
