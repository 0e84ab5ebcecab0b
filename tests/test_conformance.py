"""The conformance kit (trpo_tf.testing) on every built-in, and on broken plug-ins.

Also checks the multi-component built-ins (multi_categorical, bernoulli, beta)
against closed forms in numpy, and trains each for one short iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from trpo_tf import registry
from trpo_tf.advantages import GeneralizedAdvantageEstimator, make_gae, make_mc
from trpo_tf.config.schema import (
    EnvConfig,
    EvalConfig,
    ExperimentConfig,
    PolicyConfig,
    TrackingConfig,
    TrainerConfig,
    ValueConfig,
)
from trpo_tf.distributions import (
    BetaHead,
    CategoricalHead,
    DiagGaussianHead,
    auto_distribution_name,
    make_bernoulli,
    make_beta,
    make_categorical,
    make_diag_gaussian,
    make_multi_categorical,
)
from trpo_tf.errors import IncompatibleSpaceError
from trpo_tf.interfaces import AdvantageInputs, AdvantageOutputs
from trpo_tf.testing import (
    check_advantage_estimator,
    check_distribution,
    check_env_factory,
    check_network,
    random_advantage_inputs,
)

tfd = tfp.distributions
RNG = np.random.default_rng(0)
FAST = {"jit_compile": False, "saved_model": False, "num_samples": 1000}

# --- built-in distributions ----------------------------------------------------

BUILTIN_DISTRIBUTIONS = [
    # (entry-point name, action space, factory kwargs, kit options)
    ("categorical", gym.spaces.Discrete(5), {}, {}),
    ("categorical", gym.spaces.Discrete(4, start=3), {}, FAST),
    ("diag_gaussian", gym.spaces.Box(-1.0, 1.0, (3,), np.float32), {}, {}),
    (
        "diag_gaussian",
        gym.spaces.Box(-2.0, 2.0, (2, 2), np.float64),
        {"dtype": tf.float64, "log_std_init": -1.0},
        FAST,
    ),
    ("gaussian_state_std", gym.spaces.Box(-1.0, 1.0, (3,), np.float32), {}, {}),
    (
        "gaussian_state_std",
        gym.spaces.Box(-2.0, 2.0, (2,), np.float64),
        {"dtype": tf.float64, "log_std_init": 0.5},
        FAST,
    ),
    ("gsde", gym.spaces.Box(-1.0, 1.0, (2,), np.float32), {"num_features": 5}, {}),
    (
        "gsde",
        gym.spaces.Box(-2.0, 2.0, (3, 1), np.float64),
        {"dtype": tf.float64, "num_features": 4, "log_std_init": -1.0},
        FAST,
    ),
    ("multi_categorical", gym.spaces.MultiDiscrete([2, 3, 5], start=[0, -1, 2]), {}, {}),
    ("multi_categorical", gym.spaces.MultiDiscrete([3, 3]), {}, FAST),
    ("multi_categorical", gym.spaces.MultiDiscrete([[2, 4], [3, 1]]), {}, FAST),
    ("bernoulli", gym.spaces.MultiBinary(3), {}, {}),
    ("bernoulli", gym.spaces.MultiBinary((2, 2)), {"dtype": tf.float64}, FAST),
    (
        "beta",
        gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)),
        {},
        {},
    ),
    ("beta", gym.spaces.Box(-1.0, 3.0, (3, 1), np.float64), {"dtype": tf.float64}, FAST),
]


def test_every_builtin_distribution_is_covered() -> None:
    builtins = {
        info.name
        for info in registry.available(registry.DISTRIBUTIONS)
        if info.package.replace("-", "_") == "trpo_tf"
    }
    assert builtins == {name for name, *_ in BUILTIN_DISTRIBUTIONS}


@pytest.mark.parametrize(
    ("name", "space", "kwargs", "options"),
    BUILTIN_DISTRIBUTIONS,
    ids=[f"{name}-{space}" for name, space, *_ in BUILTIN_DISTRIBUTIONS],
)
def test_builtin_distribution_conforms(name, space, kwargs, options) -> None:
    factory = registry.load(registry.DISTRIBUTIONS, name)
    check_distribution(factory, space, **options, **kwargs)


@pytest.mark.parametrize(
    ("space", "name"),
    [
        (gym.spaces.Discrete(3), "categorical"),
        (gym.spaces.Box(-1.0, 1.0, (2,)), "diag_gaussian"),
        (gym.spaces.MultiDiscrete([2, 3]), "multi_categorical"),
        (gym.spaces.MultiBinary(4), "bernoulli"),
    ],
)
def test_auto_picks_by_space(space, name) -> None:
    assert auto_distribution_name(space) == name


@pytest.mark.parametrize(
    ("name", "space", "kwargs", "options"),
    [case for case in BUILTIN_DISTRIBUTIONS if case[3] is not FAST],
    ids=[case[0] for case in BUILTIN_DISTRIBUTIONS if case[3] is not FAST],
)
def test_builtin_graph_calls_no_nested_tf_function(name, space, kwargs, options) -> None:
    # A nested tf.function (tfp.math.lbeta in tfd.Beta's normalizer) made XLA
    # recompile the whole TRPO update on every iteration (~10 s each) once the
    # learner's ordinary log-prob function had run: keep the update's ops flat.
    head = registry.load(registry.DISTRIBUTIONS, name)(space, **kwargs)
    net = tf.constant(RNG.normal(size=(4, head.num_inputs)), tf.float32)

    action = head.distribution(head.params(net)).sample(seed=(1, 2))

    def update_ops(net_p, net_q, action):  # what the update computes (it never samples)
        with tf.GradientTape() as tape:
            tape.watch(net_q)
            dist_p = head.distribution(head.params(net_p))
            dist_q = head.distribution(head.params(net_q))
            total = tf.reduce_sum(dist_q.log_prob(action) + dist_p.kl_divergence(dist_q))
            total += tf.reduce_sum(dist_q.entropy())
        return tape.gradient(total, net_q)

    concrete = tf.function(update_ops).get_concrete_function(net, net, action)
    calls = {op.type for op in concrete.graph.get_operations() if op.type.endswith("Call")}
    assert not calls, f"{name}: nested function calls {sorted(calls)}"


# --- closed forms of the multi-component built-ins (float64) -------------------


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize(
    ("name", "space", "kwargs", "options"),
    BUILTIN_DISTRIBUTIONS,
    ids=[f"{name}-{space}" for name, space, *_ in BUILTIN_DISTRIBUTIONS],
)
def test_builtin_distribution_passes_the_pre_check(name, space, kwargs, options) -> None:
    """The run's pre-check (trpo_tf/plugin_checks.py) treats built-ins as plug-ins."""
    import keras

    from trpo_tf.config.build import build_distribution
    from trpo_tf.plugin_head_checks import check_head

    policy = keras.config.dtype_policy()
    # A float64 head trains with a float64 network (DESIGN.md): the pre-check feeds it
    # outputs in the network's dtype, Keras' global policy.
    keras.config.set_dtype_policy("float64" if kwargs.get("dtype") == tf.float64 else "float32")
    try:
        head = build_distribution(
            PolicyConfig(distribution=name, distribution_kwargs=kwargs), space
        )
        observations = RNG.normal(size=(7, 5)).astype(np.float32)
        env_actions = check_head(head, name, observations, space, seed=0)
    finally:
        keras.config.set_dtype_policy(policy)
    assert len(env_actions) == 7


def test_multi_categorical_is_a_sum_of_categoricals() -> None:
    nvec = [2, 3, 5]
    head = make_multi_categorical(gym.spaces.MultiDiscrete(nvec), dtype=tf.float64)
    assert (head.num_inputs, head.param_dim, head.action_shape) == (10, 10, (3,))
    p, q = RNG.normal(size=(6, 10)) * 2, RNG.normal(size=(6, 10)) * 2
    actions = np.stack([RNG.integers(0, n, size=6) for n in nvec], axis=1).astype(np.int32)
    dist_p, dist_q = head.distribution(tf.constant(p)), head.distribution(tf.constant(q))
    log_prob, kl, entropy = np.zeros(6), np.zeros(6), np.zeros(6)
    offset = 0
    for component, n in enumerate(nvec):
        lp = _log_softmax(p[:, offset : offset + n])
        lq = _log_softmax(q[:, offset : offset + n])
        log_prob += lp[np.arange(6), actions[:, component]]
        kl += np.sum(np.exp(lp) * (lp - lq), axis=-1)
        entropy -= np.sum(np.exp(lp) * lp, axis=-1)
        offset += n
    np.testing.assert_allclose(dist_p.log_prob(actions).numpy(), log_prob, rtol=1e-12)
    np.testing.assert_allclose(dist_p.kl_divergence(dist_q).numpy(), kl, rtol=1e-10)
    np.testing.assert_allclose(dist_p.entropy().numpy(), entropy, rtol=1e-12)


def test_multi_categorical_mode_and_env_actions_add_start() -> None:
    space = gym.spaces.MultiDiscrete([[2, 3], [4, 1]], start=[[1, -1], [0, 5]])
    head = make_multi_categorical(space)
    logits = np.zeros((1, 10), np.float32)
    logits[0, [1, 2, 8, 9]] = 5.0  # component argmaxes 1, 0, 3, 0
    mode = head.mode(tf.constant(logits)).numpy()
    assert mode.tolist() == [[1, 0, 3, 0]]
    env_action = head.to_env_action(mode)
    assert env_action.shape == (1, 2, 2) and env_action.dtype == space.dtype
    assert env_action[0].tolist() == [[2, -1], [3, 5]]
    assert space.contains(env_action[0])


def test_bernoulli_matches_closed_form() -> None:
    head = make_bernoulli(gym.spaces.MultiBinary(4), dtype=tf.float64)
    p, q = RNG.normal(size=(5, 4)) * 2, RNG.normal(size=(5, 4)) * 2
    actions = RNG.integers(0, 2, size=(5, 4)).astype(np.int32)
    sp, sq = 1 / (1 + np.exp(-p)), 1 / (1 + np.exp(-q))
    log_prob = np.sum(actions * np.log(sp) + (1 - actions) * np.log(1 - sp), axis=-1)
    kl = np.sum(sp * np.log(sp / sq) + (1 - sp) * np.log((1 - sp) / (1 - sq)), axis=-1)
    dist_p, dist_q = head.distribution(tf.constant(p)), head.distribution(tf.constant(q))
    np.testing.assert_allclose(dist_p.log_prob(actions).numpy(), log_prob, rtol=1e-12)
    np.testing.assert_allclose(dist_p.kl_divergence(dist_q).numpy(), kl, rtol=1e-10)
    assert head.mode(tf.constant(p)).numpy().tolist() == (p > 0).astype(int).tolist()
    env_actions = head.to_env_action(actions)
    assert env_actions.dtype == np.int8


def _beta_head(dtype=tf.float64) -> tuple[BetaHead, np.ndarray, np.ndarray]:
    low, high = np.array([-2.0, 0.5]), np.array([2.0, 1.0])
    return make_beta(gym.spaces.Box(low, high, dtype=np.float64), dtype=dtype), low, high


def _log_beta_fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lgamma = np.vectorize(math.lgamma)
    return lgamma(a) + lgamma(b) - lgamma(a + b)


def test_beta_log_prob_includes_the_affine_jacobian() -> None:
    head, low, high = _beta_head()
    params = head.params(tf.constant(RNG.normal(size=(4, 4)))).numpy()
    alpha, beta = params[:, :2], params[:, 2:]
    assert np.all(params > 1.0)
    unit = RNG.uniform(0.05, 0.95, size=(4, 2))
    actions = low + (high - low) * unit
    expected = np.sum(
        (alpha - 1) * np.log(unit)
        + (beta - 1) * np.log1p(-unit)
        - _log_beta_fn(alpha, beta)
        - np.log(high - low),
        axis=-1,
    )
    dist = head.distribution(tf.constant(params))
    np.testing.assert_allclose(dist.log_prob(tf.constant(actions)).numpy(), expected, rtol=1e-12)
    # The density integrates to one over the Box (midpoint rule on a fine grid).
    one_dim = make_beta(gym.spaces.Box(-2.0, 2.0, (1,), np.float64), dtype=tf.float64)
    single = one_dim.distribution(tf.constant([[2.5, 3.5]], tf.float64))
    grid = (np.arange(4000) + 0.5) / 4000
    density = np.exp(single.log_prob(tf.constant((-2.0 + 4.0 * grid)[:, None, None])).numpy())
    assert abs(density.sum() * 4.0 / 4000 - 1.0) < 1e-6


def _digamma(x: np.ndarray) -> np.ndarray:
    """ψ(x) for x > 0: recurrence up to x ≥ 6, then the asymptotic series (~1e-13)."""
    x = np.asarray(x, np.float64).copy()
    shift = np.zeros_like(x)
    for _ in range(6):
        small = x < 6
        shift -= np.where(small, 1.0 / x, 0.0)
        x = np.where(small, x + 1.0, x)
    inv2 = 1.0 / (x * x)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    return shift + np.log(x) - 0.5 / x - series


def test_beta_kl_and_entropy_match_closed_form() -> None:
    head, low, high = _beta_head()
    p = head.params(tf.constant(RNG.normal(size=(5, 4)))).numpy()
    q = head.params(tf.constant(RNG.normal(size=(5, 4)))).numpy()
    ap, bp, aq, bq = p[:, :2], p[:, 2:], q[:, :2], q[:, 2:]
    kl = np.sum(
        _log_beta_fn(aq, bq)
        - _log_beta_fn(ap, bp)
        + (ap - aq) * _digamma(ap)
        + (bp - bq) * _digamma(bp)
        + (aq - ap + bq - bp) * _digamma(ap + bp),
        axis=-1,
    )
    entropy = np.sum(
        _log_beta_fn(ap, bp)
        - (ap - 1) * _digamma(ap)
        - (bp - 1) * _digamma(bp)
        + (ap + bp - 2) * _digamma(ap + bp)
        + np.log(high - low),
        axis=-1,
    )
    dist_p, dist_q = head.distribution(tf.constant(p)), head.distribution(tf.constant(q))
    np.testing.assert_allclose(dist_p.kl_divergence(dist_q).numpy(), kl, rtol=1e-9)
    np.testing.assert_allclose(dist_p.entropy().numpy(), entropy, rtol=1e-9)


def test_beta_mode_and_env_actions_stay_in_bounds() -> None:
    head, low, high = _beta_head()
    params = np.array([[3.0, 1.0, 1.0, 1.0]])  # α = (3, 1), β = (1, 1)
    mode = head.mode(tf.constant(params)).numpy()
    np.testing.assert_allclose(mode, [[2.0, 0.75]])  # (α−1)/(α+β−2) = 1; uniform -> centre
    samples = head.distribution(tf.constant(params)).sample(2000, seed=(1, 2)).numpy()[:, 0]
    assert np.all(samples > low) and np.all(samples < high)
    assert head.to_env_action(samples).shape == (2000, 2)


# --- short training runs with the new built-ins --------------------------------


class _ToyEnv(gym.Env):
    """Reward −‖action − target(obs)‖ for 8-step episodes; any action space."""

    def __init__(self, action_space: gym.Space) -> None:
        self.action_space = action_space
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self._t += 1
        reward = -float(np.abs(np.asarray(action, np.float64)).mean())
        observation = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        return observation, reward, False, self._t >= 8, {}


TOY_SPACES = {
    "multi_categorical": gym.spaces.MultiDiscrete([3, 2], start=[-1, 0]),
    "bernoulli": gym.spaces.MultiBinary(3),
    "beta": gym.spaces.Box(-1.0, 2.0, (2,), np.float32),
}


@pytest.mark.parametrize("name", sorted(TOY_SPACES))
def test_trains_with_new_builtin(name, tmp_path) -> None:
    from trpo_tf.train import train

    env_id = f"TrpoTfToy-{name}-v0"
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=lambda space=TOY_SPACES[name]: _ToyEnv(space))
    config = ExperimentConfig(
        name=name,
        env=EnvConfig(id=env_id, n_envs=2),
        policy=PolicyConfig(distribution=name, hidden=(8,)),
        value=ValueConfig(hidden=(8,), epochs=1),
        trainer=TrainerConfig(total_steps=256, steps_per_iteration=128, jit_compile=False),
        eval=EvalConfig(every=2, episodes=2),
        tracking=TrackingConfig(tensorboard=False),
    )
    result = train(config, tmp_path / "run", quiet=True)
    assert result.env_steps == 256
    assert np.isfinite(result.final_eval_return)


# --- built-in estimators and a gymnasium env factory ---------------------------


def test_gae_conforms() -> None:
    check_advantage_estimator(make_gae)
    check_advantage_estimator(make_gae, gamma=0.9, lam=0.0)


def test_mc_conforms_and_equals_gae_with_lambda_one() -> None:
    check_advantage_estimator(
        make_mc, on_policy_reference=GeneralizedAdvantageEstimator(gamma=0.99, lam=1.0)
    )
    with pytest.raises(AssertionError, match=r"equal GAE\(gamma=0.99, lam=0.95\)"):
        check_advantage_estimator(make_mc)


@pytest.mark.parametrize("name", ["gae", "mc"])
@pytest.mark.parametrize(("n_envs", "steps"), [(1, 64), (8, 2048), (16, 16)])
def test_builtin_estimator_passes_the_pre_check(name, n_envs, steps) -> None:
    from trpo_tf.plugin_checks import check_estimator

    config = ExperimentConfig(
        advantage=replace(ExperimentConfig().advantage, estimator=name),
        env=EnvConfig(n_envs=n_envs),
        trainer=TrainerConfig(steps_per_iteration=steps),
    )
    check_estimator(config)


def test_every_builtin_estimator_is_covered() -> None:
    builtins = {
        info.name
        for info in registry.available(registry.ADVANTAGES)
        if info.package.replace("-", "_") == "trpo_tf"
    }
    assert builtins == {"gae", "mc"}


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_gymnasium_env_factory_conforms(env_id) -> None:
    check_env_factory(lambda **kwargs: gym.make(env_id, **kwargs))


def test_gymnasium_env_factory_kwargs_are_passed() -> None:
    made = []

    def factory(**kwargs):
        env = gym.make("CartPole-v1", **kwargs)
        made.append((kwargs, env))
        return env

    check_env_factory(factory, max_episode_steps=20)
    assert made, "the kit never called the factory"
    for kwargs, env in made:
        assert kwargs == {"max_episode_steps": 20}
        assert env.spec.max_episode_steps == 20


# --- the kit catches broken plug-ins -------------------------------------------

BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


class _EntropyOff(tfd.MultivariateNormalDiag):
    def _entropy(self):
        return super()._entropy() + 0.5


class _NoEntropy(tfd.MultivariateNormalDiag):
    def _entropy(self):
        raise NotImplementedError("no entropy")


class _KlOff(tfd.MultivariateNormalDiag):
    pass


@tfd.RegisterKL(_KlOff, _KlOff)
def _doubled_kl(a, b, name=None):
    return 2.0 * tfd.kl_divergence(
        tfd.MultivariateNormalDiag(a.loc, a.scale.diag),
        tfd.MultivariateNormalDiag(b.loc, b.scale.diag),
    )


def _gaussian_with(distribution_class):
    class Head(DiagGaussianHead):
        def distribution(self, params):
            mean, log_std = self._split(params)
            return distribution_class(loc=mean, scale_diag=tf.exp(log_std))

    return lambda space: Head(space.low, space.high, space.shape)


class _ReadsVariable(DiagGaussianHead):
    def distribution(self, params):
        return tfd.MultivariateNormalDiag(self._split(params)[0], tf.exp(self.log_std))


class _WrongParams(CategoricalHead):
    def params(self, net_out):
        return net_out[:, :1]


class _PlainObject:
    """The protocol's attributes on a plain object (not a tf.Module)."""

    def __init__(self, space):
        self._inner = make_categorical(space)
        for name in ("num_inputs", "param_dim", "action_shape", "action_dtype"):
            setattr(self, name, getattr(self._inner, name))
        self.trainable_variables = ()
        self.params = self._inner.params
        self.distribution = self._inner.distribution
        self.mode = self._inner.mode
        self.to_env_action = self._inner.to_env_action
        self.diagnostics = self._inner.diagnostics


class _BadDiagnostics(CategoricalHead):
    def diagnostics(self, params):
        return {"kl": tf.constant(0.0)}


BROKEN_DISTRIBUTIONS = [
    ("wrong-params-shape", lambda s: _WrongParams(s.n), gym.spaces.Discrete(3), "params"),
    (
        "forgets-start",
        lambda s: CategoricalHead(s.n),
        gym.spaces.Discrete(3, start=5),
        "inside the action space",
    ),
    ("entropy-off", _gaussian_with(_EntropyOff), BOX, "entropy"),
    ("no-entropy", _gaussian_with(_NoEntropy), BOX, "entropy.*not implemented"),
    ("kl-off", _gaussian_with(_KlOff), BOX, r"KL\(p, q\) vs mean"),
    (
        "reads-variable",
        lambda s: _ReadsVariable(s.low, s.high, s.shape),
        BOX,
        "from params alone",
    ),
    ("not-a-module", _PlainObject, gym.spaces.Discrete(3), "tf.Module"),
    ("bad-diagnostics", lambda s: _BadDiagnostics(s.n), gym.spaces.Discrete(3), "diagnostics"),
    ("wrong-space", make_categorical, BOX, "factory.*raised IncompatibleSpaceError"),
]


@pytest.mark.parametrize(
    ("factory", "space", "match"),
    [case[1:] for case in BROKEN_DISTRIBUTIONS],
    ids=[case[0] for case in BROKEN_DISTRIBUTIONS],
)
def test_check_distribution_catches(factory, space, match) -> None:
    with pytest.raises(AssertionError, match=match) as info:
        check_distribution(factory, space, **FAST)
    assert str(info.value).startswith("check_distribution(")


def test_check_distribution_catches_xla_incompatible_ops() -> None:
    class PyFuncMode(CategoricalHead):
        def mode(self, params):
            return tf.numpy_function(lambda x: x.argmax(-1).astype(np.int32), [params], tf.int32)

    with pytest.raises(AssertionError, match="jit_compile=True"):
        check_distribution(lambda s: PyFuncMode(s.n), gym.spaces.Discrete(3), saved_model=False)


def test_check_distribution_catches_a_graph_twin_that_disagrees() -> None:
    class WrongTwin(DiagGaussianHead):
        def to_env_action_graph(self, actions):
            return 0.5 * actions  # to_env_action clips instead

    space = gym.spaces.Box(-1.0, 1.0, (2,))
    with pytest.raises(AssertionError, match="to_env_action_graph"):
        check_distribution(lambda s: WrongTwin(s.low, s.high, s.shape), space, **FAST)


class _LaplaceHead(DiagGaussianHead):
    """params = [loc, log b]; TFP's closed-form Laplace KL has |loc_p − loc_q|, whose
    automatic second derivative at p = q is 0: the Fisher ignores loc."""

    def distribution(self, params):
        loc, log_scale = self._split(params)
        return tfd.Independent(tfd.Laplace(loc, tf.exp(log_scale)), reinterpreted_batch_ndims=1)


def test_check_distribution_fails_a_parameter_the_trust_region_ignores() -> None:
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    with pytest.raises(AssertionError, match=r"param column\(s\) \[0, 1\] of 4.*line search"):
        check_distribution(lambda s: _LaplaceHead(s.low, s.high, s.shape), space, **FAST)


def test_trust_region_check_exempts_columns_that_do_not_enter() -> None:
    # A one-class component's logit cannot change the policy: it has no curvature,
    # and none is required of it; the other logits of the head still are checked.
    from trpo_tf.testing.trust_region import kl_hessian_diagonal

    head = make_multi_categorical(gym.spaces.MultiDiscrete([3, 1]))
    params = head.params(tf.constant(RNG.normal(size=(4, 4)), tf.float32))
    diagonal = kl_hessian_diagonal(head, params)
    assert np.all(diagonal[:, :3] > 0) and np.all(diagonal[:, 3] == 0)
    check_distribution(make_multi_categorical, gym.spaces.MultiDiscrete([3, 1]), **FAST)


def test_check_distribution_fails_a_head_that_export_would_refuse() -> None:
    # A plug-in head's own to_env_action (even a plain clip, as the guide's example
    # had) makes the exporter demand to_env_action_graph: the kit must say so.
    class OwnClip(DiagGaussianHead):
        def to_env_action(self, actions):
            return np.clip(actions, -1.0, 1.0).astype(np.float32)

    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    with pytest.raises(
        AssertionError, match="export would be refused.*add OwnClip.to_env_action_graph"
    ):
        check_distribution(lambda s: OwnClip(s.low, s.high, s.shape), space, **FAST)

    class WithTwin(OwnClip):
        def to_env_action_graph(self, actions):
            return tf.clip_by_value(actions, -1.0, 1.0)

    check_distribution(lambda s: WithTwin(s.low, s.high, s.shape), space, **FAST)


def test_check_distribution_catches_python_control_flow_on_tensors() -> None:
    # The trainer traces without autograph: a Python `if` on a tensor fails there,
    # so the kit must fail it too, naming the fix.
    class PythonIfMode(CategoricalHead):
        def mode(self, params):
            if tf.reduce_any(params > 1e9):
                return tf.zeros(tf.shape(params)[:1], tf.int32)
            return super().mode(params)

    with pytest.raises(AssertionError, match="tf.where/tf.cond"):
        check_distribution(lambda s: PythonIfMode(s.n), gym.spaces.Discrete(3), **FAST)


@dataclass(frozen=True)
class _CrossesEpisodes:
    gamma: float
    lam: float

    def __call__(self, x: AdvantageInputs) -> AdvantageOutputs:
        no_ends = replace(x, episode_end=np.zeros_like(x.episode_end))
        return GeneralizedAdvantageEstimator(self.gamma, self.lam)(no_ends)


@dataclass(frozen=True)
class _BootstrapsTerminal:
    gamma: float
    lam: float

    def __call__(self, x: AdvantageInputs) -> AdvantageOutputs:
        never = replace(x, terminated=np.zeros_like(x.terminated))
        return GeneralizedAdvantageEstimator(self.gamma, self.lam)(never)


@dataclass(frozen=True)
class _Mutates:
    gamma: float
    lam: float

    def __call__(self, x: AdvantageInputs) -> AdvantageOutputs:
        x.values[0] += 1.0
        return GeneralizedAdvantageEstimator(self.gamma, self.lam)(x)


@dataclass(frozen=True)
class _Flat:
    gamma: float
    lam: float

    def __call__(self, x: AdvantageInputs) -> AdvantageOutputs:
        out = GeneralizedAdvantageEstimator(self.gamma, self.lam)(x)
        return AdvantageOutputs(out.advantages.reshape(-1), out.value_targets)


@pytest.mark.parametrize(
    ("estimator", "match"),
    [
        (_CrossesEpisodes, "recursion stops at episode_end"),
        (_BootstrapsTerminal, "no bootstrap from terminal states"),
        (_Mutates, "inputs unchanged"),
        (_Flat, "advantages shape"),
    ],
)
def test_check_advantage_estimator_catches(estimator, match) -> None:
    factory = lambda gamma, lam: estimator(gamma, lam)  # noqa: E731
    with pytest.raises(AssertionError, match=match):
        check_advantage_estimator(factory, on_policy_reference=None)


def test_check_advantage_estimator_rejects_unknown_kwargs() -> None:
    with pytest.raises(AssertionError, match="factory.*raised ConfigError"):
        check_advantage_estimator(make_gae, horizon=5)


def test_random_advantage_inputs_has_episode_ends_and_ratios() -> None:
    x = random_advantage_inputs(T=10, N=3, seed=2, log_rho_scale=0.5)
    assert x.rewards.shape == (10, 3) and x.rewards.dtype == np.float32
    assert x.terminated[:, :2].sum(axis=0).tolist() == [1.0, 1.0]
    assert x.episode_end[:, :2].sum(axis=0).tolist() == [2.0, 2.0]
    assert x.episode_end[:, 2].sum() == 0 and np.abs(x.log_rho).max() > 0


class _OutOfSpace(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.full(2, 5.0, np.float32), 0.0, False, False, {}


class _Unseeded(_OutOfSpace):
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.random.uniform(-1, 1, 2).astype(np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: "not an env", "returns gymnasium.Env"),
        (_OutOfSpace, "step"),
        (_Unseeded, "check_env|seeded reset"),
        (lambda: gym.make("NoSuchEnv-v9"), "factory.*raised"),
        # The class itself: cleanup must not call close() on it and hide the message.
        (
            lambda: _OutOfSpace,
            r"returned the class _OutOfSpace, not an instance; "
            r"return _OutOfSpace\(\.\.\.\)",
        ),
    ],
)
def test_check_env_factory_catches(factory, match) -> None:
    with pytest.raises(AssertionError, match=match):
        check_env_factory(factory)


def test_incompatible_spaces_for_new_builtins() -> None:
    with pytest.raises(IncompatibleSpaceError, match="multi_categorical"):
        make_multi_categorical(gym.spaces.Discrete(3))
    with pytest.raises(IncompatibleSpaceError, match="bernoulli"):
        make_bernoulli(gym.spaces.MultiDiscrete([2, 2]))
    with pytest.raises(IncompatibleSpaceError, match="finite bounds"):
        make_beta(gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))
    with pytest.raises(IncompatibleSpaceError, match="float Box"):
        make_beta(gym.spaces.MultiBinary(2))
    assert isinstance(make_diag_gaussian(BOX), DiagGaussianHead)


# --- networks ------------------------------------------------------------------


BUILTIN_NETWORKS = [
    # (entry-point name, observation space, factory kwargs, kit options)
    ("mlp", gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), {}, {}),
    (
        "mlp",
        gym.spaces.Dict({"a": gym.spaces.Discrete(3), "b": gym.spaces.Box(-1, 1, (2,))}),
        {},
        {"saved_model": False},
    ),
    (
        "cnn",
        gym.spaces.Box(0, 255, (12, 12, 3), np.uint8),
        {"filters": [4, 8], "kernel_sizes": [3, 3], "strides": [1, 2]},
        {},
    ),
    (
        "cnn",
        gym.spaces.Box(0.0, 1.0, (9, 7), np.float32),
        {"filters": [3], "kernel_sizes": 2, "strides": 1, "padding": "same"},
        {"saved_model": False},
    ),
    (
        "cnn",
        gym.spaces.Box(0, 255, (36, 36, 1), np.uint8),
        {},
        {"saved_model": False, "hidden": (32,)},
    ),
    ("lstm", gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), {"units": 8}, {}),
    ("gru", gym.spaces.Box(-1.0, 1.0, (3,), np.float32), {"units": 5}, {"saved_model": False}),
]


def test_every_builtin_network_is_covered() -> None:
    assert set(registry.names(registry.NETWORKS)) >= {"mlp", "cnn", "lstm", "gru"}
    covered = {name for name, *_ in BUILTIN_NETWORKS}
    builtin = {
        info.name
        for info in registry.available(registry.NETWORKS)
        if info.value.startswith("trpo_tf.")
    }
    assert builtin <= covered


@pytest.mark.parametrize(("name", "space", "kwargs", "options"), BUILTIN_NETWORKS)
def test_builtin_network_conforms(name, space, kwargs, options) -> None:
    check_network(registry.load(registry.NETWORKS, name), space, **options, **kwargs)


def _dense_net(spec, width=None, **layer_options):
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(spec.observation_dim,)),
            keras.layers.Dense(
                spec.output_width if width is None else width,
                kernel_initializer=keras.initializers.Orthogonal(seed=spec.seed),
                **layer_options,
            ),
        ],
        name=spec.name,
    )


def _wrong_width(spec):
    return _dense_net(spec, width=spec.output_width + 1)


def _unseeded(spec):
    import keras

    return keras.Sequential(
        [keras.Input(shape=(spec.observation_dim,)), keras.layers.Dense(spec.output_width)]
    )


def _batch_statistics(spec):
    import keras

    inputs = keras.Input(shape=(spec.observation_dim,))
    centered = keras.layers.Lambda(lambda x: x - keras.ops.mean(x, axis=0, keepdims=True))(inputs)
    dense = keras.layers.Dense(
        spec.output_width, kernel_initializer=keras.initializers.Orthogonal(seed=spec.seed)
    )
    return keras.Model(inputs, dense(centered))


def _not_a_model(spec):
    return lambda observations: observations


def _no_features(spec):
    return _dense_net(spec, width=spec.output_dim)  # ignores append_features


def _python_if(spec):
    import keras

    class PythonIf(keras.layers.Layer):
        def call(self, x):
            if keras.ops.sum(x) > 0:  # a Python branch on a tensor: fails when traced
                return x
            return -x

        def compute_output_shape(self, input_shape):  # so Keras builds it eagerly
            return input_shape

    inputs = keras.Input(shape=(spec.observation_dim,))
    dense = keras.layers.Dense(
        spec.output_width, kernel_initializer=keras.initializers.Orthogonal(seed=spec.seed)
    )
    model = keras.Model(inputs, dense(inputs))
    outer = keras.Sequential([model, PythonIf()])
    outer.build((None, spec.observation_dim))
    return outer


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (_wrong_width, r"output shape: got \[5, 4\], expected \[5, 3\] = \[batch, output_width\]"),
        (_unseeded, r"the spec's seed fixes the weights: two builds of one spec"),
        (_batch_statistics, r"rows are independent: one row at a time differs"),
        (_not_a_model, r"returns a keras.Model: got function"),
        (_no_features, r"append_features: got \[5, 3\], expected \[batch, output_dim \+ hidden"),
    ],
)
def test_check_network_catches(factory, match) -> None:
    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    with pytest.raises(AssertionError, match=match):
        check_network(factory, space, saved_model=False)


def test_check_network_catches_python_control_flow_on_tensors() -> None:
    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    with pytest.raises(
        AssertionError, match=r"inside tf.function: raised OperatorNotAllowedInGraphError"
    ):
        check_network(_python_if, space, saved_model=False)
