"""The compiled TRPO update on small random float64 batches, for both heads."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.distributions import DiagGaussianHead, make_categorical, make_diag_gaussian
from trpo_tf.networks import build_mlp
from trpo_tf.policy import Policy
from trpo_tf.trainer import TrpoHyperparameters, TrpoUpdate
from trpo_tf.trainer import compiled as compiled_module
from trpo_tf.trainer import trpo as trpo_module
from trpo_tf.trainer.cg import conjugate_gradient
from trpo_tf.trainer.flat import get_flat
from trpo_tf.trainer.fvp import fisher_of_linearization, fisher_vector_product
from trpo_tf.trainer.trpo import (
    SKIP_BAD_CURVATURE,
    SKIP_NO_HELD_OUT_GAIN,
    SKIP_NONE,
    SKIP_NONFINITE_GRADIENT,
    SKIP_REASONS,
    SKIP_ZERO_GRADIENT,
    random_subset,
    restore_policy,
)

BATCH, OBS_DIM, MINIBATCH = 256, 4, 64
KINDS = ["categorical", "diag_gaussian"]
HP = TrpoHyperparameters(value_epochs=2, value_minibatch_size=MINIBATCH)


def _build(
    kind: str,
    seed: int = 0,
    batch_size: int = BATCH,
    jit_compile: bool = False,
    dtype: tf.DType = tf.float64,
    **overrides,
) -> TrpoUpdate:
    if kind == "categorical":
        head = make_categorical(gym.spaces.Discrete(3), dtype=dtype)
    else:
        space = gym.spaces.Box(-1.0, 1.0, (2,), dtype.as_numpy_dtype)
        head = make_diag_gaussian(space, log_std_init=-0.5, dtype=dtype)
    network = build_mlp(
        OBS_DIM, [16], head.num_inputs, output_gain=0.5, seed=seed, dtype=dtype.name, name="pi"
    )
    value = build_mlp(OBS_DIM, [16], 1, seed=seed + 7, dtype=dtype.name, name="value")
    return TrpoUpdate(
        Policy(network, head),
        value,
        keras.optimizers.Adam(1e-2),
        dataclasses.replace(HP, **overrides),
        batch_size=batch_size,
        observation_dim=OBS_DIM,
        seed=seed,
        dtype=dtype,
        jit_compile=jit_compile,
    )


def _batch(update: TrpoUpdate, seed: int) -> dict[str, tf.Tensor]:
    """On-policy batch: actions sampled from π_θ, behavior log-probs under π_θ."""
    rng = np.random.default_rng(seed)
    obs = tf.constant(rng.normal(size=(BATCH, OBS_DIM)))
    distribution = update.policy.distribution(update.policy.dist_params(obs))
    actions = distribution.sample(seed=seed)
    advantages = rng.normal(size=BATCH)
    return {
        "observations": obs,
        "actions": actions,
        "behavior_log_prob": distribution.log_prob(actions),
        "advantages": tf.constant((advantages - advantages.mean()) / advantages.std()),
        "value_targets": tf.constant(np.sin(obs.numpy()) @ np.array([1.0, -2.0, 0.5, 1.5])),
    }


def _theta(update: TrpoUpdate) -> list[np.ndarray]:
    return [np.array(v.numpy(), copy=True) for v in update.policy.policy_variables]


def _assert_same(before: list[np.ndarray], after: list[np.ndarray]) -> None:
    assert len(before) == len(after)
    for b, a in zip(before, after, strict=True):
        assert a.dtype == np.float64
        assert np.array_equal(b, a)


def _numpy(metrics: dict) -> dict:
    return {k: v.numpy() for k, v in metrics.items()}


def _surrogate(policy: Policy, batch: dict) -> tf.Tensor:
    log_prob = policy.distribution(policy.dist_params(batch["observations"])).log_prob(
        batch["actions"]
    )
    return tf.reduce_mean(tf.exp(log_prob - batch["behavior_log_prob"]) * batch["advantages"])


@pytest.mark.parametrize("fvp_subsample", [1.0, 0.25], ids=["full-fvp", "subsampled-fvp"])
@pytest.mark.parametrize("kind", KINDS)
def test_accepted_steps_respect_trust_region_without_retracing(
    kind: str, fvp_subsample: float
) -> None:
    update = _build(kind, fvp_subsample=fvp_subsample)
    policy = update.policy
    for seed in range(3):
        batch = _batch(update, seed=10 + seed)
        old_params = policy.dist_params(batch["observations"])
        surrogate_old = float(_surrogate(policy, batch))
        theta_old = get_flat(policy.policy_variables).numpy()
        metrics = _numpy(update.update(**batch))

        assert metrics["skip_reason"] == SKIP_NONE
        assert metrics["line_search_accepted"]
        assert 1 <= metrics["line_search_steps"] <= HP.line_search_steps
        assert 0 < metrics["kl"] <= HP.max_kl * (1 + 1e-9)
        assert metrics["surrogate_improvement"] > 0
        assert np.isfinite(metrics["value_loss"])
        assert np.isfinite(metrics["entropy"]) and metrics["entropy"] > 0
        assert not np.array_equal(get_flat(policy.policy_variables).numpy(), theta_old)
        if kind == "diag_gaussian":
            assert "policy_std" in metrics
        # the reported KL and improvement are those of the kept θ
        new_distribution = policy.distribution(policy.dist_params(batch["observations"]))
        kl = tf.reduce_mean(policy.distribution(old_params).kl_divergence(new_distribution))
        assert float(kl) == pytest.approx(float(metrics["kl"]), rel=1e-9)
        improvement = float(_surrogate(policy, batch)) - surrogate_old
        assert improvement == pytest.approx(float(metrics["surrogate_improvement"]), rel=1e-9)
    assert update.trace_count() == 1


@pytest.mark.parametrize("kind", KINDS)
def test_zero_advantages_skip_and_leave_theta_unchanged(kind: str) -> None:
    update = _build(kind)
    batch = _batch(update, seed=1)
    batch["advantages"] = tf.zeros([BATCH], tf.float64)
    before = _theta(update)
    metrics = _numpy(update.update(**batch))
    assert metrics["skip_reason"] == SKIP_ZERO_GRADIENT
    assert not metrics["line_search_accepted"]
    assert metrics["line_search_steps"] == 0
    assert metrics["grad_norm"] == 0.0
    assert metrics["kl"] == 0.0 and metrics["surrogate_improvement"] == 0.0
    assert np.isfinite(metrics["value_loss"])  # the value fit still runs
    _assert_same(before, _theta(update))


@pytest.mark.parametrize("bad_value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("kind", KINDS)
def test_non_finite_gradient_skips_with_its_own_reason(kind: str, bad_value: float) -> None:
    update = _build(kind)
    batch = _batch(update, seed=1)
    advantages = batch["advantages"].numpy()
    advantages[7] = bad_value
    batch["advantages"] = tf.constant(advantages)
    before = _theta(update)
    metrics = _numpy(update.update(**batch))
    assert not np.isfinite(metrics["grad_norm"])
    assert metrics["skip_reason"] == SKIP_NONFINITE_GRADIENT
    assert not metrics["line_search_accepted"] and metrics["line_search_steps"] == 0
    assert metrics["kl"] == 0.0 and metrics["surrogate_improvement"] == 0.0
    _assert_same(before, _theta(update))


def test_skip_reasons_have_distinct_texts() -> None:
    codes = [SKIP_NONE, SKIP_ZERO_GRADIENT, SKIP_BAD_CURVATURE, SKIP_NONFINITE_GRADIENT]
    texts = [SKIP_REASONS[code] for code in codes]
    assert texts[0] == "" and all(texts[1:]) and len(set(texts)) == len(codes)
    assert "non-finite gradient" in SKIP_REASONS[SKIP_NONFINITE_GRADIENT]
    assert "0" in SKIP_REASONS[SKIP_ZERO_GRADIENT]
    assert all(text.isascii() for text in texts)  # written into metrics.csv as they are


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("advantage_scale", [1.0, 0.0], ids=["step", "skip"])
def test_policy_step_as_built_for_a_gpu_equals_the_cpu_one(
    kind: str, advantage_scale: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With θ on a GPU, CG runs every iteration instead of stopping once converged (no
    # device-to-host read of its residual); θ and the metrics must come out identical.
    batch = _batch(_build(kind), seed=5)
    batch["advantages"] = batch["advantages"] * advantage_scale
    del batch["value_targets"]
    results = {}
    for accelerator in (False, True):
        monkeypatch.setattr(compiled_module, "on_accelerator", lambda _, a=accelerator: a)
        update = _build(kind, cg_iters=30)  # more than converging in float64 needs
        metrics = _numpy(update.policy_update(**batch))
        results[accelerator] = (metrics, _theta(update))
    (cpu_metrics, cpu_theta), (gpu_metrics, gpu_theta) = results[False], results[True]
    _assert_same(cpu_theta, gpu_theta)
    assert cpu_metrics.keys() == gpu_metrics.keys()
    for key, value in cpu_metrics.items():
        assert np.array_equal(value, gpu_metrics[key]), key
    assert cpu_metrics["skip_reason"] == (SKIP_NONE if advantage_scale else SKIP_ZERO_GRADIENT)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_curvature_skips_and_leaves_theta_unchanged(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Fisher product of the wrong sign (as from a head whose KL is negated): −(F + λI)
    # is negative definite, so sᵀ(F + λI)s < 0 for the CG solution.
    def negated(*arguments):
        product = fisher_of_linearization(*arguments)
        return lambda vector: -product(vector)

    monkeypatch.setattr(trpo_module, "fisher_of_linearization", negated)
    update = _build(kind)
    before = _theta(update)
    metrics = _numpy(update.update(**_batch(update, seed=2)))
    assert metrics["skip_reason"] == SKIP_BAD_CURVATURE
    assert metrics["grad_norm"] > 0
    assert not metrics["line_search_accepted"]
    assert metrics["kl"] == 0.0 and metrics["surrogate_improvement"] == 0.0
    _assert_same(before, _theta(update))


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_rejected_line_search_restores_theta_bit_exactly(jit_compile: bool) -> None:
    """Gaussian head, actions at the mean, Â = 1: the step only shrinks log σ.

    Then ∂log π/∂μ = 0 and ∂log π/∂log σᵢ = −1, F's log σ block is 2·I, and the
    scaled step is Δ = −√(2δ / (d(2 + λ))) per dimension. Its true KL,
    Σᵢ Δ + e^{−2Δ}/2 − 1/2, is ≈ 4.1 (full step) and ≈ 3.0 (0.9·step) for δ = 2:
    both candidates violate δ, although J improves, so the step is rejected.
    """
    update = _build(
        "diag_gaussian",
        jit_compile=jit_compile,
        max_kl=2.0,
        line_search_steps=2,
        line_search_backtrack=0.9,
    )
    policy = update.policy
    policy.head.log_std.assign([-1 / 3, -0.1])  # values that do not survive θ_old + s − s
    batch = _batch(update, seed=3)
    params = policy.dist_params(batch["observations"])
    batch["actions"] = policy.head.mode(params)
    batch["behavior_log_prob"] = policy.distribution(params).log_prob(batch["actions"])
    batch["advantages"] = tf.ones([BATCH], tf.float64)
    before = _theta(update)
    step = -np.sqrt(2 * 2.0 / (2 * (2 + HP.cg_damping)))
    assert not np.any(before[-1] + step - step == before[-1])

    metrics = _numpy(update.update(**batch))
    assert metrics["skip_reason"] == SKIP_NONE
    assert not metrics["line_search_accepted"]
    assert metrics["line_search_steps"] == 2
    assert metrics["kl"] == 0.0 and metrics["surrogate_improvement"] == 0.0
    _assert_same(before, _theta(update))
    # sanity of the construction: both candidates' KL exceeds δ
    d, lam = 2, HP.cg_damping
    delta = -np.sqrt(2 * 2.0 / (d * (2 + lam)))
    for fraction in (1.0, 0.9):
        step = fraction * delta
        assert d * (step + np.exp(-2 * step) / 2 - 0.5) > 2.0


@pytest.mark.parametrize("kind", KINDS)
def test_surrogate_uses_stored_behavior_log_probs(kind: str) -> None:
    update = _build(kind, seed=4)
    policy = update.policy
    variables = policy.policy_variables
    batch = _batch(update, seed=5)
    on_policy_log_prob = batch["behavior_log_prob"]
    shift = np.where(np.arange(BATCH) % 2 == 0, 0.3, 0.0)
    batch["behavior_log_prob"] = on_policy_log_prob - shift  # β ≠ π_old on half the samples

    def gradient(log_behavior):
        with tf.GradientTape() as tape:
            surrogate = _surrogate(policy, {**batch, "behavior_log_prob": log_behavior})
        return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(surrogate, variables)], 0)

    g_behavior = gradient(batch["behavior_log_prob"])
    g_on_policy = gradient(on_policy_log_prob)

    # the step direction TRPO should take: CG(F + λI, g) with F at θ_old
    obs = batch["observations"]
    old = policy.distribution(tf.stop_gradient(policy.dist_params(obs)))

    def mean_kl():
        return tf.reduce_mean(old.kl_divergence(policy.distribution(policy.dist_params(obs))))

    def direction(g):
        return conjugate_gradient(
            lambda v: fisher_vector_product(mean_kl, variables, v, HP.cg_damping), g, HP.cg_iters
        ).numpy()

    expected_direction, on_policy_direction = direction(g_behavior), direction(g_on_policy)
    theta_old = get_flat(variables).numpy()
    surrogate_old = float(_surrogate(policy, batch))
    metrics = _numpy(update.update(**batch))
    step = get_flat(variables).numpy() - theta_old

    assert metrics["grad_norm"] == pytest.approx(float(tf.norm(g_behavior)), rel=1e-10)
    assert abs(float(tf.norm(g_on_policy)) / metrics["grad_norm"] - 1) > 1e-3
    assert metrics["line_search_accepted"]

    def cosine(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cosine(step, expected_direction) > 1 - 1e-9
    assert cosine(step, on_policy_direction) < 1 - 1e-4
    # the improvement is measured with the same importance weights
    improvement = float(_surrogate(policy, batch)) - surrogate_old
    assert improvement == pytest.approx(float(metrics["surrogate_improvement"]), rel=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_value_loss_decreases_on_fixed_targets(kind: str) -> None:
    update = _build(kind)
    batch = _batch(update, seed=6)

    def mse() -> float:
        prediction = tf.squeeze(update.value_network(batch["observations"]), -1)
        return float(tf.reduce_mean(tf.square(prediction - batch["value_targets"])))

    initial = mse()
    losses = [float(update.update(**batch)["value_loss"]) for _ in range(8)]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]
    assert sum(b < a for a, b in zip(losses[:-1], losses[1:], strict=True)) >= 5
    assert mse() < 0.5 * initial
    assert update.trace_count() == 1


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_prepare_value_fit_builds_the_fit_and_changes_no_state(jit_compile: bool) -> None:
    update, twin = (_build("diag_gaussian", jit_compile=jit_compile) for _ in range(2))
    batch = _batch(update, seed=8)
    optimizer_state = [v.numpy().copy() for v in update.value_optimizer.variables]
    phi = [v.numpy().copy() for v in update.value_network.trainable_variables]
    generator_state = update.generator.state.numpy().copy()
    update.prepare_value_fit()
    assert int(update.value_fit.experimental_get_tracing_count()) == 1
    for before, variable in zip(phi, update.value_network.trainable_variables, strict=True):
        np.testing.assert_array_equal(before, variable.numpy())
    for before, variable in zip(optimizer_state, update.value_optimizer.variables, strict=True):
        np.testing.assert_array_equal(before, variable.numpy())
    np.testing.assert_array_equal(generator_state, update.generator.state.numpy())
    # The real fit then reuses that graph and does what a fresh update's does.
    losses = [
        float(u.value_update(batch["observations"], batch["value_targets"])) for u in (update, twin)
    ]
    assert int(update.value_fit.experimental_get_tracing_count()) == 1
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for a, b in zip(
        update.value_network.trainable_variables,
        twin.value_network.trainable_variables,
        strict=True,
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-9)


def test_value_minibatch_larger_than_twice_the_batch() -> None:
    """A batch smaller than half a value minibatch still trains (every sample used).

    ``fit_value`` pads the permutation with ``permutation[: padded - batch]``,
    which is shorter than ``padded - batch`` when ``minibatch_size > 2·batch``.
    """
    batch_size = 16
    update = _build("categorical", batch_size=batch_size)  # value_minibatch_size = 64
    rng = np.random.default_rng(0)
    metrics = update.update(
        observations=tf.constant(rng.normal(size=(batch_size, OBS_DIM))),
        actions=tf.constant(rng.integers(0, 3, size=batch_size), tf.int32),
        behavior_log_prob=tf.fill([batch_size], tf.constant(-np.log(3.0), tf.float64)),
        advantages=tf.constant(rng.normal(size=batch_size)),
        value_targets=tf.constant(rng.normal(size=batch_size)),
    )
    assert np.isfinite(metrics["value_loss"].numpy())


def test_random_subset_is_distinct_uniform_and_fresh_each_draw() -> None:
    generator = tf.random.Generator.from_seed(3)
    draws = [random_subset(generator, 100, 20).numpy() for _ in range(3)]
    for draw in draws:
        assert draw.shape == (20,)
        assert len(set(draw.tolist())) == 20
        assert draw.min() >= 0 and draw.max() < 100
    assert set(draws[0].tolist()) != set(draws[1].tolist())
    again = tf.random.Generator.from_seed(3)
    assert np.array_equal(random_subset(again, 100, 20).numpy(), draws[0])
    # Every index is equally likely to be in the subset: 3 of 10, 4,000 draws, so each
    # index is expected 1,200 times (standard deviation 29).
    counts = np.zeros(10)
    for _ in range(4000):
        counts[random_subset(generator, 10, 3).numpy()] += 1
    assert np.all(np.abs(counts - 1200) < 150), counts


@pytest.mark.parametrize("kind", KINDS)
def test_subsampled_fisher_changes_the_step_but_not_the_gradient(kind: str) -> None:
    full, subsampled = _build(kind), _build(kind, fvp_subsample=0.25)
    batch = _batch(full, seed=5)
    metrics = [
        _numpy(update.policy_update(**{k: v for k, v in batch.items() if k != "value_targets"}))
        for update in (full, subsampled)
    ]
    # The gradient g uses the whole batch either way; only F (hence the step) differs.
    assert metrics[0]["grad_norm"] == pytest.approx(metrics[1]["grad_norm"], rel=1e-12)
    assert not np.allclose(
        get_flat(full.policy.policy_variables).numpy(),
        get_flat(subsampled.policy.policy_variables).numpy(),
    )


def test_run_policy_step_equals_the_tf_function_and_rejects_another_batch_shape() -> None:
    update, twin = _build("categorical"), _build("categorical")
    batch = {k: v for k, v in _batch(update, seed=5).items() if k != "value_targets"}
    via_concrete = _numpy(update.run_policy_step(*(v.numpy() for v in batch.values())))
    via_function = _numpy(twin.policy_update(**batch))
    assert via_concrete == via_function
    for mine, theirs in zip(_theta(update), _theta(twin), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    fit = float(update.value_update(batch["observations"], np.zeros(BATCH)))
    assert fit == float(twin.value_update(batch["observations"], np.zeros(BATCH)))
    short = [v[: BATCH // 2] for v in batch.values()]
    with pytest.raises(ValueError, match=r"policy_step: observations has shape \(128, 4\)"):
        update.run_policy_step(*short)
    assert update.retrace_count() == 0


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kind", KINDS)
def test_step_direction_does_not_depend_on_the_scale_of_the_advantages(
    kind: str, dtype: tf.DType
) -> None:
    """Â and 1e-4·Â (advantage normalization off, small rewards) give one direction.

    g scales with Â, and so does CG's residual: a stopping test on the absolute rᵀr
    stops the small one early (or before its first product: s = 0, a skipped step).
    """
    batch = {k: v for k, v in _batch(_build(kind), seed=5).items() if k != "value_targets"}
    if dtype == tf.float32:
        batch = {
            k: tf.cast(v, tf.float32) if v.dtype == tf.float64 else v for k, v in batch.items()
        }
    steps, metrics = [], []
    for scale in (1.0, 1e-4):
        update = _build(kind, dtype=dtype)
        theta_old = get_flat(update.policy.policy_variables).numpy()
        scaled = {**batch, "advantages": batch["advantages"] * scale}
        metrics.append(_numpy(update.policy_update(**scaled)))
        steps.append(get_flat(update.policy.policy_variables).numpy() - theta_old)
    for m in metrics:
        assert m["skip_reason"] == SKIP_NONE and m["line_search_accepted"]
    assert metrics[1]["grad_norm"] == pytest.approx(1e-4 * metrics[0]["grad_norm"], rel=1e-4)
    big, small = (np.asarray(s, np.float64) for s in steps)
    cosine = big @ small / np.linalg.norm(big) / np.linalg.norm(small)
    assert cosine > 1 - 1e-5


class _VariableReadingGaussianHead(DiagGaussianHead):
    """A head whose diagnostics read its own log_std variable (as a plug-in may)."""

    def diagnostics(self, params: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"policy_std": tf.reduce_mean(tf.exp(self.log_std))}


@pytest.mark.parametrize("kind", [*KINDS, "variable_reading_gaussian"])
def test_policy_std_and_entropy_are_those_of_pi_old_before_the_step(kind: str) -> None:
    update = _build("diag_gaussian" if kind == "variable_reading_gaussian" else kind)
    policy = update.policy
    if kind == "variable_reading_gaussian":
        head = policy.head
        policy.head = _VariableReadingGaussianHead(
            head.low, head.high, head.env_shape, -0.5, tf.float64, np.float64
        )
    batch = _batch(update, seed=11)
    old_params = policy.dist_params(batch["observations"])
    expected = {
        "entropy": float(tf.reduce_mean(policy.distribution(old_params).entropy())),
        **{k: float(v) for k, v in policy.head.diagnostics(old_params).items()},
    }
    before = _theta(update)
    metrics = _numpy(update.update(**batch))
    assert metrics["line_search_accepted"]
    if kind != "categorical":
        assert not np.array_equal(before[-1], _theta(update)[-1])  # log_std moved
        assert "policy_std" in expected
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-12), key


@pytest.mark.parametrize("fvp_method", ["gauss_newton", "hessian"])
@pytest.mark.parametrize("kind", KINDS)
def test_full_step_has_quadratic_kl_equal_to_the_trust_region(kind: str, fvp_method: str) -> None:
    """½ sᵀ(F + λI)s = δ for the full natural-gradient step s (F at θ_old).

    The accepted step is backtrackᵏ · s after k rejected candidates; a step √2 too
    large (or a scale of δ instead of 2δ) gives 2δ (or δ/2) here.
    """
    max_kl = 0.004
    update = _build(kind, seed=2, fvp_method=fvp_method, max_kl=max_kl)
    policy = update.policy
    variables = policy.policy_variables
    batch = _batch(update, seed=13)
    theta_old = get_flat(variables).numpy()
    metrics = _numpy(update.update(**batch))
    assert metrics["line_search_accepted"]
    fraction = HP.line_search_backtrack ** (int(metrics["line_search_steps"]) - 1)
    full_step = (get_flat(variables).numpy() - theta_old) / fraction
    restore_policy(policy, tf.constant(theta_old))
    obs = batch["observations"]
    old = policy.distribution(tf.stop_gradient(policy.dist_params(obs)))

    def mean_kl():
        return tf.reduce_mean(old.kl_divergence(policy.distribution(policy.dist_params(obs))))

    product = fisher_vector_product(mean_kl, variables, tf.constant(full_step), HP.cg_damping)
    assert 0.5 * float(full_step @ product.numpy()) == pytest.approx(max_kl, rel=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_entropy_bonus_is_part_of_the_surrogate_and_raises_entropy(kind: str) -> None:
    """J = mean[π/β · Â] + c · mean H: the reported improvement is of that J, and with
    zero advantages (TRPO alone would skip) the step raises π's entropy within δ."""
    coef = 0.05
    update = _build(kind, entropy_coef=coef)
    policy = update.policy
    batch = _batch(update, seed=3)

    def objective() -> float:
        distribution = policy.distribution(policy.dist_params(batch["observations"]))
        entropy = tf.reduce_mean(distribution.entropy())
        return float(_surrogate(policy, batch) + coef * entropy)

    before, plain_before = objective(), float(_surrogate(policy, batch))
    metrics = _numpy(update.update(**batch))
    assert metrics["line_search_accepted"]
    # The graph and eager evaluations of J sum in different orders (their difference,
    # an improvement of ~0.04, agrees to ~1e-9 relative); the plain surrogate's
    # improvement differs from it by c·ΔH, far more than the tolerance.
    improvement = float(metrics["surrogate_improvement"])
    assert improvement == pytest.approx(objective() - before, rel=1e-7)
    plain = float(_surrogate(policy, batch)) - plain_before
    assert abs(plain - improvement) > 1e-4 * abs(improvement)

    batch = _batch(update, seed=4)
    batch["advantages"] = tf.zeros([BATCH], tf.float64)
    observations = batch["observations"]
    old = policy.distribution(policy.dist_params(observations))
    metrics = _numpy(update.update(**batch))
    assert metrics["skip_reason"] == SKIP_NONE and metrics["line_search_accepted"]
    new = policy.distribution(policy.dist_params(observations))
    assert float(tf.reduce_mean(new.entropy())) > float(tf.reduce_mean(old.entropy()))
    assert 0 < float(tf.reduce_mean(old.kl_divergence(new))) <= HP.max_kl * (1 + 1e-9)


def test_entropy_coef_zero_is_the_plain_trpo_step() -> None:
    """The default (0) takes the same step as an update built without it; 0.01 does not."""
    plain, explicit = _build("diag_gaussian"), _build("diag_gaussian", entropy_coef=0.0)
    batch = _batch(plain, seed=5)
    plain.update(**batch)
    explicit.update(**batch)
    _assert_same(_theta(plain), _theta(explicit))
    bonus = _build("diag_gaussian", entropy_coef=0.01)
    bonus.update(**batch)
    assert not np.array_equal(
        get_flat(bonus.policy.policy_variables), get_flat(plain.policy.policy_variables)
    )


@pytest.mark.parametrize("kind", KINDS)
def test_set_max_kl_takes_the_step_of_an_update_built_with_it_without_retracing(
    kind: str,
) -> None:
    """δ set at run time (a schedule's) gives, bit for bit, the step an update built
    with that δ takes, and the compiled step is not traced again when it changes."""
    scheduled, built = _build(kind, seed=4), _build(kind, seed=4, max_kl=0.002)
    _assert_same(_theta(scheduled), _theta(built))
    batch = _batch(scheduled, seed=20)
    scheduled.set_max_kl(0.002)
    small = _numpy(scheduled.update(**batch))
    built.update(**batch)
    _assert_same(_theta(scheduled), _theta(built))
    assert small["line_search_accepted"] and 0 < small["kl"] <= 0.002 * (1 + 1e-9)

    scheduled.set_max_kl(0.02)
    large = _numpy(scheduled.update(**_batch(scheduled, seed=21)))
    assert large["line_search_accepted"] and 0.002 < large["kl"] <= 0.02 * (1 + 1e-9)
    assert scheduled.trace_count() == 1
    with pytest.raises(ValueError, match="max_kl must be > 0"):
        scheduled.set_max_kl(0.0)


def _agreeing_advantages(update: TrpoUpdate, batch: dict) -> np.ndarray:
    """Â from one rule on every state: +1 for action 0 (categorical), a₀ − μ₀(s) (Gaussian)."""
    actions = batch["actions"].numpy()
    if actions.ndim == 1:
        advantages = (actions == 0).astype(np.float64)
    else:
        mean = update.policy.distribution(update.policy.dist_params(batch["observations"]))
        advantages = actions[:, 0] - mean.mean().numpy()[:, 0]
    return (advantages - advantages.mean()) / advantages.std()


@pytest.mark.parametrize("kind", KINDS)
def test_held_out_check_keeps_the_step_both_halves_agree_on(kind: str) -> None:
    """With a signal on every state, the direction fitted on each half improves J on the
    other, and the update is TRPO's step bit for bit."""
    plain, checked = _build(kind, seed=6), _build(kind, seed=6, held_out_check=True)
    batch = _batch(plain, seed=30)
    batch["advantages"] = tf.constant(_agreeing_advantages(plain, batch))
    expected = _numpy(plain.update(**batch))
    metrics = _numpy(checked.update(**batch))
    assert metrics["skip_reason"] == SKIP_NONE and metrics["line_search_accepted"]
    assert metrics["kl"] == expected["kl"] > 0
    _assert_same(_theta(plain), _theta(checked))


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("kind", KINDS)
def test_held_out_check_skips_a_step_the_halves_disagree_on(kind: str, jit_compile: bool) -> None:
    """Â of one rule on the first half of the batch and its opposite on the second: each
    half's direction lowers J on the other half, so θ stays θ_old bit for bit, where
    TRPO alone takes a step (the whole batch's J still improves along its direction)."""
    checked = _build(kind, held_out_check=True, jit_compile=jit_compile)
    batch = _batch(checked, seed=31)
    advantages = _agreeing_advantages(checked, batch)
    advantages[BATCH // 2 :] *= -1.0
    batch["advantages"] = tf.constant(advantages)
    before = _theta(checked)
    metrics = _numpy(checked.update(**batch))
    assert metrics["skip_reason"] == SKIP_NO_HELD_OUT_GAIN
    assert SKIP_REASONS[SKIP_NO_HELD_OUT_GAIN] == "no held-out improvement"
    assert not metrics["line_search_accepted"] and metrics["line_search_steps"] == 0
    assert metrics["kl"] == 0.0 and metrics["surrogate_improvement"] == 0.0
    assert metrics["grad_norm"] > 0
    _assert_same(before, _theta(checked))

    plain = _build(kind, jit_compile=jit_compile)
    taken = _numpy(plain.update(**batch))
    assert taken["skip_reason"] == SKIP_NONE and taken["line_search_accepted"]
