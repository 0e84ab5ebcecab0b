"""Tracing the compiled update without a Python stack trace on every operation.

While it traces a ``tf.function``, TensorFlow records the Python call stack of
every operation it creates (for the "defined at" lines of a runtime error).
Those records hold Python frames, so when the function is instantiated on its
first call, TensorFlow takes the GIL back once per operation. Alone that costs
little, but beside another Python thread it costs a GIL hand-over each time: the
CartPole policy step (~660 operations) takes 0.09 s to instantiate alone, 0.2 s
beside the value fit being traced in the learner's worker thread, and 3 s beside
a thread running pure Python (``benchmarks/update_profile.py --beside-python``).
Traced without the records, the first call runs without the GIL: 0.08–0.09 s in
all three cases. The functions a training run compiles (the update's halves, the
TensorFlow actor, V_φ and log π_old for stale batches) are traced this way.

The price: a runtime error inside the compiled update still names the failing
node and its message, but shows ``<stack traces unavailable>`` instead of the
Python lines that created it. ``TRPO_TF_OP_TRACEBACKS=1`` in the environment
keeps the records (for debugging a plug-in head; its conformance kit,
``trpo_tf.testing``, traces heads with them).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from tensorflow.python.client import pywrap_tf_session

KEEP_TRACEBACKS_ENV = "TRPO_TF_OP_TRACEBACKS"
_SETTER = "TF_SetOpStackTrace"

_lock = threading.Lock()
_active = 0
_original: Callable[..., Any] | None = None

F = TypeVar("F", bound=Callable[..., Any])


def _skip_stack_trace(*_: Any) -> None:
    """Stands in for TensorFlow's setter: the operation keeps no stack trace."""


def tracebacks_kept() -> bool:
    """Whether ``TRPO_TF_OP_TRACEBACKS`` asks for per-operation stack traces."""
    return os.environ.get(KEEP_TRACEBACKS_ENV, "").strip().lower() in {"1", "true", "yes"}


@contextlib.contextmanager
def without_op_tracebacks() -> Iterator[None]:
    """Operations created inside this block (in any thread) record no Python stack.

    Re-entrant and thread-safe: the record is off while at least one block is open
    and back to TensorFlow's own setter when the last one closes, exceptions
    included. Does nothing when ``TRPO_TF_OP_TRACEBACKS`` is set, or on a
    TensorFlow without the setter this relies on.
    """
    global _active, _original
    if tracebacks_kept() or not hasattr(pywrap_tf_session, _SETTER):
        yield
        return
    with _lock:
        if _active == 0:
            _original = getattr(pywrap_tf_session, _SETTER)
            setattr(pywrap_tf_session, _SETTER, _skip_stack_trace)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                setattr(pywrap_tf_session, _SETTER, _original)
                _original = None


def traced_without_op_tracebacks(function: F) -> F:
    """``function`` running inside :func:`without_op_tracebacks` (wrap before ``tf.function``)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with without_op_tracebacks():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
