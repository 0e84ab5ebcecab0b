"""Keep the garbage collector off the objects that exist before training starts."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Exclude every object alive on entry from garbage-collector scans until exit.

    Importing TensorFlow, Keras and TFP leaves ~440k tracked objects. CPython's
    full collections walk all of them (~0.2 s each on the 2-core machine); a
    100k-step CartPole run triggered one, and a trace of the policy step in a fresh
    process took 0.52–0.57 s with collections against 0.20–0.21 s without
    (docs/benchmarks/speed.md).
    ``gc.freeze()`` moves the existing objects to the permanent generation, so the
    collections during training scan only what training allocates; on exit
    ``gc.unfreeze()`` hands them back, so nothing stays uncollectable afterwards.

    When the caller has frozen objects itself (``gc.get_freeze_count() > 0``) the
    block changes nothing, so the caller's freeze is never undone.
    """
    if gc.get_freeze_count() > 0:
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
