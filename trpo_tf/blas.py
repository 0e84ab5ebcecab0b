"""Keep numpy's BLAS thread pool to the training's thread budget."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import threadpoolctl


@contextlib.contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """Limit numpy's BLAS (OpenBLAS, MKL, BLIS) to ``threads`` threads inside the block.

    ``threads`` is ``trainer.threads``, the budget TensorFlow gets too; 0 leaves the
    libraries' defaults. The learner's numpy matrix products are small (V_φ over
    1–2k states, ``[n, 64] @ [64, 64]``), yet OpenBLAS splits them over every core, and
    its idle threads then spin for a while on the cores the background value fit and
    the rollout use: with two CPUs and no limit, 100k-step CartPole runs took 1.12–1.30x
    as long (docs/benchmarks/speed.md). The previous limits are restored on exit.
    """
    if threads <= 0:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
        yield
