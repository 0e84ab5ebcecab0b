"""Gauss-Newton FVP equals the double-backprop KL-Hessian FVP at θ_old."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.distributions import make_categorical, make_diag_gaussian
from trpo_tf.networks import build_mlp
from trpo_tf.policy import Policy
from trpo_tf.trainer.flat import num_params
from trpo_tf.trainer.fvp import fisher_vector_product, gauss_newton_fisher_vector_product


def _policy(kind: str) -> Policy:
    if kind == "diag_gaussian":
        head = make_diag_gaussian(gym.spaces.Box(-1.0, 1.0, (3,)), dtype=tf.float64)
        head.log_std.assign([0.3, -0.2, 0.1])
    else:
        head = make_categorical(gym.spaces.Discrete(4), dtype=tf.float64)
    network = build_mlp(5, [16, 16], head.num_inputs, output_gain=0.5, seed=3, dtype="float64")
    return Policy(network, head)


@pytest.mark.parametrize("kind", ["categorical", "diag_gaussian"])
@pytest.mark.parametrize("jit", [False, True])
def test_gauss_newton_matches_hessian_product(kind: str, jit: bool) -> None:
    policy = _policy(kind)
    rng = np.random.default_rng(0)
    observations = tf.constant(rng.normal(size=(64, 5)))
    old = tf.stop_gradient(policy.dist_params(observations))
    variables = policy.policy_variables

    def kl_of_params(p_old: tf.Tensor, p: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(policy.distribution(p_old).kl_divergence(policy.distribution(p)))

    def mean_kl() -> tf.Tensor:
        return kl_of_params(old, policy.dist_params(observations))

    def gauss_newton(vector: tf.Tensor) -> tf.Tensor:
        return gauss_newton_fisher_vector_product(
            lambda: policy.dist_params(observations), old, kl_of_params, variables, vector, 0.1
        )

    product = tf.function(gauss_newton, jit_compile=True) if jit else gauss_newton
    for seed in range(3):
        vector = tf.constant(np.random.default_rng(seed).normal(size=num_params(variables)))
        expected = fisher_vector_product(mean_kl, variables, vector, 0.1).numpy()
        np.testing.assert_allclose(product(vector).numpy(), expected, rtol=1e-9, atol=1e-12)


def test_gauss_newton_product_is_positive_semidefinite() -> None:
    policy = _policy("diag_gaussian")
    observations = tf.constant(np.random.default_rng(1).normal(size=(32, 5)))
    old = tf.stop_gradient(policy.dist_params(observations))

    def kl_of_params(p_old: tf.Tensor, p: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(policy.distribution(p_old).kl_divergence(policy.distribution(p)))

    for seed in range(5):
        vector = tf.constant(
            np.random.default_rng(seed).normal(size=num_params(policy.policy_variables))
        )
        fv = gauss_newton_fisher_vector_product(
            lambda: policy.dist_params(observations),
            old,
            kl_of_params,
            policy.policy_variables,
            vector,
            0.0,
        )
        assert float(tf.tensordot(vector, fv, 1)) >= -1e-12
