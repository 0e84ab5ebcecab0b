"""Where the compiled update runs: accelerator detection and a GPU-kernel audit.

TensorFlow places an operation on the GPU only if a GPU kernel is registered for
its type; any other operation runs on the host, and every tensor that crosses
between the two is a device-host copy (inside CG: one per iteration). The
standard TensorFlow wheel registers its GPU kernels even on a machine without a
GPU, so :func:`ops_without_kernel` answers "would this graph stay on the GPU?"
on any machine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from trpo_tf.trainer.fvp import primal_variables

# Graph plumbing executed by the runtime itself (no kernel of its own to place).
_RUNTIME_OPS = frozenset({"_Arg", "_Retval", "_DeviceArg", "_DeviceRetval"})


def devices_of(variables: Sequence[Any]) -> list[str]:
    """The distinct devices ``variables`` (Keras or ``tf.Variable``) live on, as ``GPU:0``."""
    devices = []
    for variable in primal_variables(variables):
        spec = tf.DeviceSpec.from_string(variable.device or "")
        name = f"{spec.device_type}:{spec.device_index}" if spec.device_type else "unplaced"
        if name not in devices:
            devices.append(name)
    return devices


def on_accelerator(variables: Sequence[Any]) -> bool:
    """Whether any of ``variables`` lives on a non-CPU device (where CG runs without
    reading its residual back)."""
    return any(d != "unplaced" and not d.startswith("CPU:") for d in devices_of(variables))


def _nodes(function: Any) -> list[Any]:
    """NodeDefs of a traced function and of every library function it calls."""
    graph_def = function.graph.as_graph_def()
    library = {f.signature.name for f in graph_def.library.function}
    nodes = list(graph_def.node)
    for f in graph_def.library.function:
        nodes.extend(f.node_def)
    return [n for n in nodes if n.op not in library and n.op not in _RUNTIME_OPS]


def op_types(function: Any) -> Counter[str]:
    """Operation types of a traced function and of every function it calls.

    ``function`` is a ``ConcreteFunction`` (``tf.function(...).get_concrete_function``).
    Loop and branch bodies (``While``, ``If``) are functions of the graph's library,
    so they are counted too; calls of library functions are not op types themselves.
    """
    return Counter(node.op for node in _nodes(function))


def _kernel_accepts(kernel: Any, node: Any) -> bool:
    """Whether a registered kernel's type constraints admit the node's type attributes."""
    for constraint in kernel.constraint:
        attr = node.attr.get(constraint.name)
        if attr is None or attr.WhichOneof("value") != "type":
            continue  # a list-of-types attribute or one the node leaves at its default
        if attr.type not in constraint.allowed_values.list.type:
            return False
    return True


def ops_without_kernel(function: Any, device_type: str = "GPU") -> dict[str, int]:
    """Operations of ``function`` (see :func:`op_types`) with no ``device_type`` kernel.

    A node counts as placeable when a kernel for its op type is registered for
    ``device_type`` (or device-independently: ``While``, ``If``) and admits its
    dtypes. Returns ``{"OpType[dtype, ...]": count}``; empty when the whole graph can
    run on that device.
    """
    # TensorFlow's kernel registry has no public API; imported here so that the trainer,
    # which needs only on_accelerator, does not depend on it.
    from tensorflow.python.framework import kernels

    missing: Counter[str] = Counter()
    registered: dict[str, list[Any]] = {}
    for node in _nodes(function):
        if node.op not in registered:
            registered[node.op] = [
                k
                for k in kernels.get_registered_kernels_for_op(node.op).kernel
                if k.device_type in (device_type, "DEFAULT")
            ]
        if not any(_kernel_accepts(k, node) for k in registered[node.op]):
            types = [tf.dtypes.as_dtype(a.type).name for a in node.attr.values() if a.type]
            missing[f"{node.op}[{', '.join(sorted(types))}]"] += 1
    return dict(missing)
