"""Can the compiled update stay on a GPU? Audited from TensorFlow's kernel registry."""

from __future__ import annotations

import types

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.agent import Agent
from trpo_tf.config import experiment_from_dict
from trpo_tf.learner import build_update
from trpo_tf.trainer.placement import devices_of, on_accelerator, op_types, ops_without_kernel

OBS_DIM, BATCH = 5, 64

HEADS = {
    "categorical": gym.spaces.Discrete(3),
    "diag_gaussian": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
    "gaussian_state_std": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
    "gsde": gym.spaces.Box(-2.0, 2.0, (2,), np.float32),
    "beta": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
    "bernoulli": gym.spaces.MultiBinary(3),
    "multi_categorical": gym.spaces.MultiDiscrete([2, 3]),
}


def test_ops_without_a_gpu_kernel_are_found() -> None:
    @tf.function(autograph=False)
    def mixed(x):
        doubled = tf.numpy_function(lambda a: a * 2, [x], tf.float32)  # host callback
        text = tf.strings.as_string(x)  # string ops have no GPU kernel
        return tf.matmul(x[None], x[:, None]), doubled, text

    function = mixed.get_concrete_function(tf.TensorSpec([3], tf.float32))
    missing = ops_without_kernel(function)
    assert set(missing) == {"PyFunc[]", "AsString[float32]"}
    assert op_types(function)["MatMul"] == 1


def test_a_kernel_registered_only_for_other_dtypes_does_not_count() -> None:
    # Cholesky has GPU kernels for floating types only.
    @tf.function(autograph=False)
    def factor(a):
        return tf.linalg.cholesky(a)

    assert ops_without_kernel(factor.get_concrete_function(tf.TensorSpec([2, 2], tf.float32))) == {}
    assert ops_without_kernel(factor.get_concrete_function(tf.TensorSpec([2, 2], tf.float16)))


@pytest.mark.parametrize("distribution", sorted(HEADS))
@pytest.mark.parametrize("fvp", ["gauss_newton", "hessian"])
def test_the_update_has_a_gpu_kernel_for_every_op(distribution: str, fvp: str) -> None:
    # Loop bodies included: an op without one inside CG would be a host round-trip
    # per iteration. With the entropy bonus and the held-out check on: their ops are in
    # the graph too.
    trainer = {"steps_per_iteration": BATCH, "fvp_subsample": 0.5, "fvp": fvp}
    config = experiment_from_dict(
        {
            "policy": {"distribution": distribution},
            "trainer": {**trainer, "entropy_coef": 0.01, "held_out_check": True},
            "value": {"minibatch_size": 16},
        }
    )
    agent = Agent.build(config, OBS_DIM, HEADS[distribution])
    update = build_update(config, agent, BATCH, OBS_DIM)
    assert update.hp.entropy_coef == pytest.approx(0.01)
    assert update.hp.held_out_check
    for function in (update.policy_update, update.value_fit):
        traced = function.get_concrete_function(*function.input_signature)
        assert op_types(traced)["While"] + op_types(traced)["StatelessWhile"] >= 1
        assert ops_without_kernel(traced) == {}, function


def test_on_accelerator_reads_the_variables_device() -> None:
    assert not on_accelerator([tf.Variable(1.0)])
    assert devices_of([tf.Variable(1.0), tf.Variable(2.0)]) == ["CPU:0"]
    gpu = types.SimpleNamespace(device="/job:localhost/replica:0/task:0/device:GPU:0")
    cpu = types.SimpleNamespace(device="/job:localhost/replica:0/task:0/device:CPU:0")
    assert on_accelerator([cpu, gpu])
    assert devices_of([cpu, gpu, cpu]) == ["CPU:0", "GPU:0"]
    assert not on_accelerator([cpu, types.SimpleNamespace(device="")])
