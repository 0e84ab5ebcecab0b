"""configure_tensorflow: GPU memory growth, and no error once TensorFlow is running."""

from __future__ import annotations

import pytest
import tensorflow as tf

from trpo_tf.tf_runtime import configure_tensorflow


def test_visible_gpus_get_memory_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = ["gpu0", "gpu1"]
    growth: dict[str, bool] = {}
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else []
    )
    monkeypatch.setattr(
        tf.config.experimental, "set_memory_growth", lambda d, on: growth.__setitem__(d, on)
    )
    configure_tensorflow(threads=0)
    assert growth == {"gpu0": True, "gpu1": True}


def test_a_gpu_already_initialized_keeps_its_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(device, enable):
        raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu0"])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", refuse)
    configure_tensorflow(threads=0)  # no error: the process's setting stands


def test_threads_after_the_runtime_started_are_left_alone() -> None:
    tf.constant(1.0) + 1.0  # the runtime is up
    before = tf.config.threading.get_intra_op_parallelism_threads()
    configure_tensorflow(threads=3)
    assert tf.config.threading.get_intra_op_parallelism_threads() == before
