"""FusedAdam: the same steps as keras.optimizers.Adam, in fewer ops."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.trainer.adam import FusedAdam


def _pair(dtype: str) -> tuple[list[tf.Variable], list[tf.Variable]]:
    rng = np.random.default_rng(0)
    values = [rng.normal(size=(3, 4)), rng.normal(size=(4,))]
    make = lambda: [tf.Variable(v.astype(dtype)) for v in values]  # noqa: E731
    return make(), make()


def _gradients(step: int, dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(100 + step)
    return [rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=(4,)).astype(dtype)]


def _numpy_adam(values: list[np.ndarray], steps: int, lr: float) -> list[np.ndarray]:
    """Adam in float64 numpy, straight from the paper (ε outside the bias correction)."""
    params = [v.astype(np.float64) for v in values]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        for i, g in enumerate(_gradients(t - 1, "float64")):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            alpha = lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            params[i] = params[i] - alpha * m[i] / (np.sqrt(v[i]) + 1e-7)
    return params


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("compiled", [False, True, "xla"])
def test_steps_match_adam_reference_and_keras(dtype: str, compiled: bool | str) -> None:
    fused_vars, keras_vars = _pair(dtype)
    initial = [v.numpy() for v in fused_vars]
    fused, reference = FusedAdam(0.05), keras.optimizers.Adam(0.05)
    fused.build(fused_vars)
    reference.build(keras_vars)

    def step(optimizer, variables, gradients):
        optimizer.apply_gradients(zip(gradients, variables, strict=True))

    fused_step = (
        tf.function(step, autograph=False, jit_compile=compiled == "xla") if compiled else step
    )
    for t in range(6):
        gradients = [tf.constant(g) for g in _gradients(t, dtype)]
        fused_step(fused, fused_vars, gradients)
        reference.apply_gradients(zip(gradients, keras_vars, strict=True))
    assert int(fused.iterations.numpy()) == 6
    # float64 is exact to round-off; float32 rounds 1 − β₂ (1.3e-5 relative), which
    # moves the steps by a few parts per million.
    tolerance = 2e-5 if dtype == "float32" else 1e-12
    expected = _numpy_adam(initial, 6, 0.05)
    for mine, theirs, exact, start in zip(fused_vars, keras_vars, expected, initial, strict=True):
        assert np.abs(exact - start).max() > 0.1  # the steps moved the parameters
        np.testing.assert_allclose(mine.numpy(), exact, rtol=tolerance, atol=tolerance)
        # Keras rounds its β constants to float32 whatever the variable's dtype.
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=2e-5, atol=2e-5)


def test_checkpoint_restores_moments_and_step(tmp_path) -> None:
    variables, restored_vars = _pair("float32")
    optimizer = FusedAdam(0.1)
    optimizer.build(variables)
    for t in range(3):
        optimizer.apply_gradients(zip(_gradients(t, "float32"), variables, strict=True))
    path = tf.train.Checkpoint(optimizer=optimizer, v0=variables[0], v1=variables[1]).write(
        str(tmp_path / "ckpt")
    )
    restored = FusedAdam(0.1)
    restored.build(restored_vars)
    tf.train.Checkpoint(optimizer=restored, v0=restored_vars[0], v1=restored_vars[1]).read(
        path
    ).assert_consumed()
    assert int(restored.iterations.numpy()) == 3
    for a, b in zip(optimizer.m + optimizer.v, restored.m + restored.v, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # The next step is the same from the restored state.
    optimizer.apply_gradients(zip(_gradients(3, "float32"), variables, strict=True))
    restored.apply_gradients(zip(_gradients(3, "float32"), restored_vars, strict=True))
    for a, b in zip(variables, restored_vars, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_build_is_idempotent_and_unbuilt_variable_is_named() -> None:
    variables, _ = _pair("float32")
    optimizer = FusedAdam(0.1)
    optimizer.build(variables)
    optimizer.build(variables)
    assert len(optimizer.m) == len(optimizer.v) == 2
    stranger = tf.Variable(np.zeros(2, np.float32), name="stranger")
    with pytest.raises(ValueError, match="stranger.*not built"):
        optimizer.apply_gradients([(tf.ones(2), stranger)])
