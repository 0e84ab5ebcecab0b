"""Process-wide TensorFlow settings for training: threads, graph rewrites, GPU memory."""

from __future__ import annotations

import contextlib

import tensorflow as tf


def configure_tensorflow(threads: int, graph_optimizer: bool = False) -> None:
    """Use ``threads`` intra/inter-op threads (0 = TensorFlow's default); grappler on/off.

    Small MLP graphs run faster on one thread than on several (thread hand-offs
    cost more than the arithmetic); large networks want 0. Threads can only be set
    before TensorFlow's runtime starts; later calls keep the current setting.
    Grappler rewrites every function graph on its first call; for the update's
    small graphs that costs more than it saves (docs/benchmarks/speed.md).
    Visible GPUs take memory as the run needs it instead of all of it at start, so
    several runs (``benchmarks/learning.py``'s parallel seeds) can share one GPU.
    """
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not graph_optimizer})
    for gpu in tf.config.list_physical_devices("GPU"):
        # Already initialized: its allocation policy is fixed for the process.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    if threads <= 0:
        return
    # The runtime may already be initialized in this process (e.g. several runs in one).
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
