"""Fisher-vector products against the explicit Hessian of the mean KL (float64).

The reference Hessian is computed on a functional copy of the policy (a tanh MLP
written with plain TF ops on a flat θ tensor, and the KL in closed form), so it
shares neither the Keras variables nor TFP's KL with the code under test.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.distributions import make_categorical, make_diag_gaussian
from trpo_tf.networks import build_mlp
from trpo_tf.policy import Policy
from trpo_tf.trainer.flat import assign_flat, get_flat, num_params
from trpo_tf.trainer.fvp import fisher_vector_product

OBS_DIM, HIDDEN, BATCH = 3, 4, 7


def _policy(kind: str, seed: int) -> Policy:
    if kind == "categorical":
        head = make_categorical(gym.spaces.Discrete(3), dtype=tf.float64)
    else:
        head = make_diag_gaussian(
            gym.spaces.Box(-1.0, 1.0, (2,), np.float64), log_std_init=-0.3, dtype=tf.float64
        )
    network = build_mlp(OBS_DIM, [HIDDEN], head.num_inputs, dtype="float64", seed=seed)
    policy = Policy(network, head)
    # Generic parameters (the initializer gives zero biases and a constant log-std).
    rng = np.random.default_rng(seed)
    n = num_params(policy.policy_variables)
    assign_flat(policy.policy_variables, tf.constant(rng.normal(scale=0.7, size=n)))
    return policy


def _observations(seed: int) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).normal(size=(BATCH, OBS_DIM)))


def _functional_params(policy: Policy, theta: tf.Tensor, obs: tf.Tensor) -> tf.Tensor:
    """dist_params(obs) as a function of a flat θ (same layout as policy_variables)."""
    shapes = [v.shape for v in policy.policy_variables]
    pieces = tf.split(theta, [int(np.prod(s)) for s in shapes])
    w1, b1, w2, b2 = (tf.reshape(p, s) for p, s in zip(pieces[:4], shapes[:4], strict=True))
    out = tf.tanh(obs @ w1 + b1) @ w2 + b2
    if len(pieces) == 5:  # Gaussian: [mean, log_std]
        return tf.concat([out, tf.broadcast_to(pieces[4], tf.shape(out))], axis=-1)
    return out


def _closed_form_kl(kind: str, old: tf.Tensor, new: tf.Tensor) -> tf.Tensor:
    """Per-state KL(old‖new) in closed form, ``[batch]``."""
    if kind == "categorical":
        log_p, log_q = tf.nn.log_softmax(old), tf.nn.log_softmax(new)
        return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
    d = old.shape[-1] // 2
    mu_p, ls_p, mu_q, ls_q = old[:, :d], old[:, d:], new[:, :d], new[:, d:]
    return tf.reduce_sum(
        ls_q - ls_p + (tf.exp(2 * ls_p) + tf.square(mu_p - mu_q)) / (2 * tf.exp(2 * ls_q)) - 0.5,
        axis=-1,
    )


def _explicit_hessian(kind, policy, theta, old_params, obs) -> np.ndarray:
    theta = tf.constant(theta)
    with tf.GradientTape() as outer:
        outer.watch(theta)
        with tf.GradientTape() as inner:
            inner.watch(theta)
            new = _functional_params(policy, theta, obs)
            kl = tf.reduce_mean(_closed_form_kl(kind, old_params, new))
        grad = inner.gradient(kl, theta)
    return outer.jacobian(grad, theta).numpy()


def _mean_kl(policy: Policy, old_params: tf.Tensor, obs: tf.Tensor):
    old = policy.distribution(tf.stop_gradient(old_params))

    def mean_kl():
        return tf.reduce_mean(old.kl_divergence(policy.distribution(policy.dist_params(obs))))

    return mean_kl


KINDS = ["categorical", "diag_gaussian"]


@pytest.mark.parametrize("kind", KINDS)
def test_functional_copy_matches_policy(kind: str) -> None:
    policy = _policy(kind, seed=1)
    obs = _observations(2)
    theta = get_flat(policy.policy_variables)
    np.testing.assert_allclose(
        _functional_params(policy, theta, obs).numpy(),
        policy.dist_params(obs).numpy(),
        rtol=1e-13,
        atol=1e-14,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_log_std_is_a_policy_parameter(kind: str) -> None:
    policy = _policy(kind, seed=1)
    head_vars = list(policy.head.trainable_variables)
    assert policy.policy_variables[len(policy.network.trainable_variables) :] == head_vars
    assert len(head_vars) == (1 if kind == "diag_gaussian" else 0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("at_old", [True, False], ids=["theta_old", "theta_moved"])
def test_fvp_matches_explicit_hessian(kind: str, at_old: bool) -> None:
    policy = _policy(kind, seed=3)
    obs = _observations(4)
    variables = policy.policy_variables
    old_params = policy.dist_params(obs)
    theta_old = get_flat(variables).numpy()
    theta = theta_old
    if not at_old:  # the FVP is the Hessian-vector product wherever it is evaluated
        theta = theta_old + np.random.default_rng(5).normal(scale=0.2, size=theta_old.size)
        assign_flat(variables, tf.constant(theta))
    hessian = _explicit_hessian(kind, policy, theta, old_params, obs)
    assert hessian.shape == (theta.size, theta.size)
    if kind == "diag_gaussian":
        # the log-std block is part of θ and has curvature (2 per dim at θ_old)
        assert np.abs(hessian[-2:, -2:]).max() > 0.1
    mean_kl = _mean_kl(policy, old_params, obs)
    rng = np.random.default_rng(6)
    for damping in (0.0, 0.1, 0.0):
        v = rng.normal(size=theta.size)
        product = fisher_vector_product(mean_kl, variables, tf.constant(v), damping)
        assert product.dtype == tf.float64
        assert product.shape == (theta.size,)
        np.testing.assert_allclose(product.numpy(), hessian @ v + damping * v, atol=1e-10)
    # the product does not move θ
    assert np.array_equal(get_flat(variables).numpy(), theta)


@pytest.mark.parametrize("kind", KINDS)
def test_fvp_inside_tf_function(kind: str) -> None:
    policy = _policy(kind, seed=7)
    obs = _observations(8)
    variables = policy.policy_variables
    old_params = policy.dist_params(obs)
    theta = get_flat(variables).numpy()
    hessian = _explicit_hessian(kind, policy, theta, old_params, obs)

    @tf.function(input_signature=[tf.TensorSpec([theta.size], tf.float64)])
    def fvp(v):
        return fisher_vector_product(_mean_kl(policy, old_params, obs), variables, v, 0.05)

    v = np.random.default_rng(9).normal(size=theta.size)
    np.testing.assert_allclose(fvp(tf.constant(v)).numpy(), hessian @ v + 0.05 * v, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_hessian_at_theta_old_is_the_fisher_information(kind: str) -> None:
    """At θ = θ_old: ∇²KL = E_s E_a~π[∇log π ∇log πᵀ], which is PSD.

    The expectation over actions is exact: a sum over the classes for the
    categorical, and the Gaussian's Fisher diag(1/σ², 2) in (μ, log σ) otherwise.
    """
    policy = _policy(kind, seed=11)
    obs = _observations(12)
    theta = get_flat(policy.policy_variables)
    old_params = policy.dist_params(obs)
    hessian = _explicit_hessian(kind, policy, theta.numpy(), old_params, obs)

    with tf.GradientTape() as tape:
        tape.watch(theta)
        params = _functional_params(policy, theta, obs)
    jac = tape.jacobian(params, theta).numpy()  # [batch, param_dim, n]
    p = old_params.numpy()
    fisher = np.zeros_like(hessian)
    for s in range(BATCH):
        if kind == "categorical":
            probs = np.exp(p[s] - p[s].max())
            probs /= probs.sum()
            # ∇ log softmax_a = J_a − Σ_b π_b J_b
            mean_jac = probs @ jac[s]
            for a, prob in enumerate(probs):
                score = jac[s, a] - mean_jac
                fisher += prob * np.outer(score, score)
        else:
            d = p.shape[1] // 2
            weights = np.concatenate([np.exp(-2 * p[s, d:]), np.full(d, 2.0)])
            fisher += jac[s].T @ (weights[:, None] * jac[s])
    fisher /= BATCH
    np.testing.assert_allclose(hessian, fisher, atol=1e-10)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-12)
    assert np.linalg.eigvalsh(hessian).min() > -1e-10
