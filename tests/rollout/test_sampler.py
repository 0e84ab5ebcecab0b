"""SyncSampler against tiny hand-written environments whose every number is known.

``CountingEnv`` observes ``[t, index]`` where ``t`` counts the steps since its last
reset and ``index`` is its position in the vector env; the reward of the step that
moves the counter to ``t`` is ``t``. An episode of length ``L`` therefore returns
``L (L + 1) / 2`` and its true last observation is ``[L, index]``.
"""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.advantages.gae import GeneralizedAdvantageEstimator
from trpo_tf.config import experiment_from_dict
from trpo_tf.config.build import build_policy
from trpo_tf.envs import make_vector_env
from trpo_tf.errors import EnvRuntimeError, NonFiniteEnvError, NormalizerOverflowError
from trpo_tf.learner import compute_advantages
from trpo_tf.normalization import ObservationNormalizer, RewardNormalizer
from trpo_tf.rollout.actor import Actor
from trpo_tf.rollout.sampler import SyncSampler

N_ENVS = 3
OBS_DIM = 2
BOX_LOW = np.array([-1.0, 0.0], np.float32)
BOX_HIGH = np.array([1.0, 0.5], np.float32)


class EnvBroke(RuntimeError):
    """What a faulty CountingEnv raises."""


class CountingEnv(gym.Env):
    """obs = [t, index]; reward t; optional termination, truncation and fault injection.

    ``nan_obs_at`` / ``nan_reward_at`` count steps over the env's whole life (not per
    episode), starting at 1 for the first ``step`` call; they put ``bad_value`` (NaN
    by default) into the observation or reward, observations in ``obs_dtype``.
    ``raise_in_step_at`` (a life step) and ``raise_in_reset_after`` (resets that
    succeed first) make the env raise :class:`EnvBroke`; ``reward_as`` converts every
    reward (``str``: a reward that is not a number).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        index: int,
        action_space: gym.Space,
        terminate_at: int | None = None,
        truncate_at: int | None = None,
        nan_obs_at: int | None = None,
        nan_reward_at: int | None = None,
        bad_value: float = float("nan"),
        obs_dtype: type = np.float32,
        raise_in_step_at: int | None = None,
        raise_in_reset_after: int | None = None,
        reward_as: Any = float,
    ) -> None:
        self.index = index
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        self.action_space = action_space
        self.terminate_at = terminate_at
        self.truncate_at = truncate_at
        self.nan_obs_at = nan_obs_at
        self.nan_reward_at = nan_reward_at
        self.bad_value = bad_value
        self.obs_dtype = obs_dtype
        self.raise_in_step_at = raise_in_step_at
        self.raise_in_reset_after = raise_in_reset_after
        self.reward_as = reward_as
        self.received: list[np.ndarray] = []
        self.t = 0
        self.life_steps = 0
        self.resets = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.index], self.obs_dtype)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.resets += 1
        if self.raise_in_reset_after is not None and self.resets > self.raise_in_reset_after:
            raise EnvBroke(f"env {self.index} cannot reset")
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.received.append(np.array(action, copy=True))
        self.t += 1
        self.life_steps += 1
        if self.life_steps == self.raise_in_step_at:
            raise EnvBroke(f"env {self.index} diverged\nat life step {self.life_steps}")
        obs = self._obs()
        reward = self.reward_as(self.t)
        if self.life_steps == self.nan_obs_at:
            obs[0] = self.bad_value
        if self.life_steps == self.nan_reward_at:
            reward = self.bad_value
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        truncated = self.truncate_at is not None and self.t >= self.truncate_at
        return obs, reward, terminated, truncated, {}


def _vector_env(action_space: gym.Space, **per_env: Any) -> gym.vector.VectorEnv:
    """N_ENVS CountingEnvs; each keyword is one value per env index (a list) or shared.

    ``time_limit=[...]`` wraps that env in gymnasium's ``TimeLimit``.
    """
    counter = itertools.count()

    def env_fn() -> gym.Env:
        index = next(counter)
        kwargs = {k: v[index] if isinstance(v, list) else v for k, v in per_env.items()}
        time_limit = kwargs.pop("time_limit", None)
        env = CountingEnv(index, action_space, **kwargs)
        return gym.wrappers.TimeLimit(env, time_limit) if time_limit else env

    return make_vector_env(env_fn, N_ENVS, "sync")


ACTION_SPACES = {
    "discrete": gym.spaces.Discrete(2),
    "box": gym.spaces.Box(BOX_LOW, BOX_HIGH, (2,), np.float32),
}


@pytest.fixture(scope="module")
def policies() -> dict[str, Any]:
    """One policy + compiled actor per action-space kind (XLA compiles once per module)."""
    built = {}
    for kind, space in ACTION_SPACES.items():
        config = experiment_from_dict(
            {
                "seed": 3,
                "policy": {
                    "hidden": [8],
                    # Wide Gaussian so that samples leave the Box and get clipped.
                    "distribution_kwargs": {"log_std_init": 1.0} if kind == "box" else {},
                },
            }
        )
        policy = build_policy(config, OBS_DIM, space)
        # Generic weights: the initializer's tiny output layer makes every logit ~0.
        rng = np.random.default_rng(0)
        for variable in policy.network.trainable_variables:
            variable.assign(rng.normal(scale=0.5, size=variable.shape).astype(np.float32))
        built[kind] = (policy, Actor(policy, N_ENVS, OBS_DIM, seed=1))
    return built


def _sampler(
    envs: gym.vector.VectorEnv,
    policy_and_actor: tuple[Any, Actor],
    steps_per_env: int,
    clip_nonfinite: bool = False,
    env_name: str = "counting-env",
    normalize_obs: bool = False,
    normalize_reward: bool = False,
) -> SyncSampler:
    policy, actor = policy_and_actor
    return SyncSampler(
        envs,
        env_name,
        actor,
        policy.head,
        steps_per_env,
        ObservationNormalizer((OBS_DIM,), normalize_obs),
        RewardNormalizer(N_ENVS, 0.99, normalize_reward),
        clip_nonfinite,
        seed=0,
    )


# Episode ends used by several tests: env 0 hits a gymnasium TimeLimit after 4 steps,
# env 1 terminates after 3, env 2 truncates itself after 5.
LENGTHS = (4, 3, 5)
TRUNCATES = (True, False, True)


def _ending_envs(kind: str = "discrete") -> gym.vector.VectorEnv:
    return _vector_env(
        ACTION_SPACES[kind],
        time_limit=[4, None, None],
        terminate_at=[None, 3, None],
        truncate_at=[None, None, 5],
    )


def _expected_episodes(first_step: int, last_step: int) -> tuple[list[float], list[int]]:
    """Returns/lengths of episodes ending at global vector steps first..last (1-based)."""
    returns, lengths = [], []
    for step in range(first_step, last_step + 1):
        for length in LENGTHS:
            if step % length == 0:
                returns.append(length * (length + 1) / 2)
                lengths.append(length)
    return returns, lengths


@pytest.mark.parametrize("kind", ["discrete", "box"])
def test_rollout_fields_have_documented_shapes_and_dtypes(policies, kind):
    T = 4
    policy, _ = policies[kind]
    sampler = _sampler(_ending_envs(kind), policies[kind], T)
    try:
        rollout = sampler.collect(policy_version=7)
    finally:
        sampler.close()
    head = policy.head
    action_shape = (T, N_ENVS) if kind == "discrete" else (T, N_ENVS, 2)
    action_dtype = np.int32 if kind == "discrete" else np.float32
    expected = {
        "observations": ((T, N_ENVS, OBS_DIM), np.float32),
        "actions": (action_shape, action_dtype),
        "rewards": ((T, N_ENVS), np.float32),
        "raw_rewards": ((T, N_ENVS), np.float32),
        "terminated": ((T, N_ENVS), np.bool_),
        "truncated": ((T, N_ENVS), np.bool_),
        "final_observations": ((T, N_ENVS, OBS_DIM), np.float32),
        "last_observations": ((N_ENVS, OBS_DIM), np.float32),
        "behavior_log_prob": ((T, N_ENVS), np.float32),
        "behavior_params": ((T, N_ENVS, head.param_dim), np.float32),
        "policy_version": ((T, N_ENVS), np.int64),
    }
    for name, (shape, dtype) in expected.items():
        value = getattr(rollout, name)
        assert isinstance(value, np.ndarray), name
        assert value.shape == shape, (name, value.shape)
        assert value.dtype == dtype, (name, value.dtype)
    assert rollout.episode_returns.dtype == np.float64
    assert rollout.episode_lengths.dtype == np.int64
    assert rollout.episode_returns.ndim == rollout.episode_lengths.ndim == 1
    assert rollout.episode_returns.shape == rollout.episode_lengths.shape
    assert (rollout.policy_version == 7).all()
    assert rollout.num_steps == T * N_ENVS
    assert rollout.flat("observations").shape == (T * N_ENVS, OBS_DIM)
    assert rollout.flat("behavior_log_prob").shape == (T * N_ENVS,)
    assert rollout.nonfinite_replaced == 0
    assert sampler.total_env_steps == T * N_ENVS


def test_truncation_keeps_true_final_observation_and_resets(policies):
    T = 12
    sampler = _sampler(_ending_envs(), policies["discrete"], T)
    try:
        rollout = sampler.collect(policy_version=1)
    finally:
        sampler.close()
    for i, (length, truncates) in enumerate(zip(LENGTHS, TRUNCATES, strict=True)):
        ends = [t for t in range(T) if (t + 1) % length == 0]
        end_mask = np.zeros(T, bool)
        end_mask[ends] = True
        # Stored observations count up from the reset observation [0, i].
        np.testing.assert_array_equal(rollout.observations[:, i, 0], np.arange(T) % length)
        np.testing.assert_array_equal(rollout.observations[:, i, 1], i)
        if truncates:
            np.testing.assert_array_equal(rollout.truncated[:, i], end_mask)
            assert not rollout.terminated[:, i].any()
            for t in ends:
                np.testing.assert_array_equal(rollout.final_observations[t, i], [length, i])
        else:
            np.testing.assert_array_equal(rollout.terminated[:, i], end_mask)
            assert not rollout.truncated[:, i].any()
        # Rows that were not truncated carry no final observation.
        not_truncated = ~rollout.truncated[:, i]
        assert (rollout.final_observations[not_truncated, i] == 0).all()
        # The observation after any episode end is the reset observation.
        for t in ends:
            after = rollout.observations[t + 1, i] if t + 1 < T else rollout.last_observations[i]
            np.testing.assert_array_equal(after, [0, i])
    np.testing.assert_array_equal(rollout.last_observations[:, 0], np.full(N_ENVS, T) % LENGTHS)


def test_episode_returns_and_lengths_match_the_env_across_rollouts(policies):
    T = 5
    sampler = _sampler(_ending_envs(), policies["discrete"], T)
    try:
        first = sampler.collect(policy_version=1)
        second = sampler.collect(policy_version=2)
    finally:
        sampler.close()
    for rollout, start in ((first, 1), (second, T + 1)):
        returns, lengths = _expected_episodes(start, start + T - 1)
        np.testing.assert_array_equal(rollout.episode_returns, returns)
        np.testing.assert_array_equal(rollout.episode_lengths, lengths)
        steps = np.arange(start - 1, start - 1 + T)[:, None]
        expected_rewards = (steps % np.array(LENGTHS)) + 1
        np.testing.assert_array_equal(rollout.raw_rewards, expected_rewards)
        # Reward normalization is off: learning rewards are the raw ones.
        np.testing.assert_array_equal(rollout.rewards, rollout.raw_rewards)
    # The second rollout's episodes started in the first one (env 0: steps 5..8).
    assert 10.0 in second.episode_returns.tolist()
    assert (second.policy_version == 2).all()


@pytest.mark.parametrize("kind", ["discrete", "box"])
def test_behavior_log_prob_and_params_match_the_policy(policies, kind):
    T = 6
    policy, _ = policies[kind]
    sampler = _sampler(_ending_envs(kind), policies[kind], T)
    try:
        rollout = sampler.collect(policy_version=1)
    finally:
        sampler.close()
    observations = tf.constant(rollout.flat("observations"))
    params = policy.dist_params(observations)
    log_prob = policy.distribution(params).log_prob(tf.constant(rollout.flat("actions")))
    np.testing.assert_allclose(rollout.flat("behavior_params"), params.numpy(), atol=1e-5)
    np.testing.assert_allclose(rollout.flat("behavior_log_prob"), log_prob.numpy(), atol=1e-5)
    # Not a degenerate policy: actions differ in probability.
    assert np.ptp(rollout.behavior_log_prob) > 1e-3


def test_nan_observation_raises_naming_env_index_and_step(policies):
    T = 5
    envs = _vector_env(ACTION_SPACES["discrete"], nan_obs_at=[None, None, 3])
    sampler = _sampler(envs, policies["discrete"], T, env_name="nan-obs-env")
    try:
        with pytest.raises(NonFiniteEnvError) as raised:
            sampler.collect(policy_version=1)
    finally:
        sampler.close()
    message = str(raised.value)
    assert "nan-obs-env" in message
    assert "env index 2" in message
    # The sampler counts env steps over all envs: the 3rd vector step is env step 9.
    assert f"env step {3 * N_ENVS}" in message
    assert "observation" in message


def test_nan_observation_is_replaced_when_clipping(policies):
    T = 5
    envs = _vector_env(ACTION_SPACES["discrete"], nan_obs_at=[None, None, 3])
    sampler = _sampler(envs, policies["discrete"], T, clip_nonfinite=True)
    try:
        rollout = sampler.collect(policy_version=1)
    finally:
        sampler.close()
    assert rollout.nonfinite_replaced > 0
    assert np.isfinite(rollout.observations).all()
    assert np.isfinite(rollout.behavior_log_prob).all()
    assert rollout.observations[3, 2, 0] == 0.0  # the NaN, replaced
    np.testing.assert_array_equal(rollout.observations[:, 0, 0], np.arange(T))


def test_nan_reward_raises_naming_env_index_and_step(policies):
    T = 4
    envs = _vector_env(ACTION_SPACES["discrete"], nan_reward_at=[None, 2, None])
    sampler = _sampler(envs, policies["discrete"], T, env_name="nan-reward-env")
    try:
        with pytest.raises(NonFiniteEnvError) as raised:
            sampler.collect(policy_version=1)
    finally:
        sampler.close()
    message = str(raised.value)
    assert "nan-reward-env" in message
    assert "env index 1" in message
    assert f"env step {2 * N_ENVS}" in message
    assert "reward" in message


def test_nan_reward_is_replaced_when_clipping(policies):
    T = 4
    envs = _vector_env(ACTION_SPACES["discrete"], nan_reward_at=[None, 2, None])
    sampler = _sampler(envs, policies["discrete"], T, clip_nonfinite=True)
    try:
        rollout = sampler.collect(policy_version=1)
    finally:
        sampler.close()
    assert rollout.nonfinite_replaced > 0
    assert np.isfinite(rollout.raw_rewards).all()
    assert np.isfinite(rollout.rewards).all()
    assert rollout.raw_rewards[1, 1] == 0.0
    np.testing.assert_array_equal(rollout.raw_rewards[:, 0], np.arange(1, T + 1))


def test_box_env_receives_clipped_actions_while_rollout_stores_raw_samples(policies):
    T = 8
    envs = _vector_env(ACTION_SPACES["box"])
    sampler = _sampler(envs, policies["box"], T)
    try:
        rollout = sampler.collect(policy_version=1)
        received = np.stack(
            [np.stack(env.unwrapped.received) for env in envs.envs], axis=1
        )  # [T, N, 2]
    finally:
        sampler.close()
    assert received.shape == (T, N_ENVS, 2)
    raw = rollout.actions.astype(np.float64)
    np.testing.assert_allclose(received, np.clip(raw, BOX_LOW, BOX_HIGH), rtol=0, atol=1e-7)
    assert (received >= BOX_LOW).all() and (received <= BOX_HIGH).all()
    # Clipping was exercised in both directions and the stored actions are not clipped.
    assert (raw < BOX_LOW).any() and (raw > BOX_HIGH).any()


def _gae_reference(rollout, value, gamma: float, lam: float) -> np.ndarray:
    """Plain-loop GAE with truncation bootstrapping from V(final observation)."""
    T, N = rollout.rewards.shape
    advantages = np.zeros((T, N))
    for i in range(N):
        running = 0.0
        for t in reversed(range(T)):
            if rollout.terminated[t, i]:
                next_value = 0.0
            elif rollout.truncated[t, i]:
                next_value = value(rollout.final_observations[t, i])
            elif t + 1 < T:
                next_value = value(rollout.observations[t + 1, i])
            else:
                next_value = value(rollout.last_observations[i])
            delta = rollout.rewards[t, i] + gamma * next_value - value(rollout.observations[t, i])
            if rollout.terminated[t, i] or rollout.truncated[t, i]:
                running = 0.0
            running = delta + gamma * lam * running
            advantages[t, i] = running
    return advantages


def test_compute_advantages_bootstraps_truncated_steps_from_final_observation(policies):
    T, gamma = 12, 0.9
    sampler = _sampler(_ending_envs(), policies["discrete"], T)
    try:
        rollout = sampler.collect(policy_version=1)
    finally:
        sampler.close()

    def value_fn(observations: np.ndarray) -> np.ndarray:
        return observations[:, 0].astype(np.float64) * 10.0

    # λ = 0: each advantage is the one-step TD error, exposing V(s_{t+1}) directly.
    values, advantages, targets = compute_advantages(
        rollout, value_fn, GeneralizedAdvantageEstimator(gamma=gamma, lam=0.0)
    )
    np.testing.assert_allclose(values, rollout.observations[..., 0] * 10.0)
    np.testing.assert_allclose(targets, advantages + values, atol=1e-5)
    # Env 0 truncated (TimeLimit 4) at t = 3: s_3 = [3], true s_4 = [4], r = 4.
    assert rollout.truncated[3, 0]
    np.testing.assert_allclose(advantages[3, 0], 4 + gamma * 40.0 - 30.0, atol=1e-4)
    # Env 2 truncated (own flag, length 5) at t = 4: s_4 = [4], true s_5 = [5], r = 5.
    assert rollout.truncated[4, 2]
    np.testing.assert_allclose(advantages[4, 2], 5 + gamma * 50.0 - 40.0, atol=1e-4)
    # Env 1 terminated at t = 2: no bootstrap at all.
    assert rollout.terminated[2, 1]
    np.testing.assert_allclose(advantages[2, 1], 3 - 20.0, atol=1e-4)
    # Last step, episode running (env 2 at t = 11, s = [1]): bootstrap from s_T = [2].
    np.testing.assert_allclose(advantages[11, 2], 2 + gamma * 20.0 - 10.0, atol=1e-4)

    lam = 0.95
    _, advantages, _ = compute_advantages(
        rollout, value_fn, GeneralizedAdvantageEstimator(gamma=gamma, lam=lam)
    )
    expected = _gae_reference(rollout, lambda o: float(o[0]) * 10.0, gamma, lam)
    np.testing.assert_allclose(advantages, expected, rtol=1e-5, atol=1e-4)


def test_bug_final_observations_zero_where_not_truncated_with_obs_normalization(policies):
    """Rollout documents final_observations as zeros where not truncated.

    With observation normalization on, the sampler normalizes the whole stacked
    row (zeros included) on steps where any env truncated, so the non-truncated
    envs of that row get (0 − μ)/σ instead of 0.
    """
    T = 6
    sampler = _sampler(_ending_envs(), policies["discrete"], T, normalize_obs=True)
    try:
        rollout = sampler.collect(policy_version=1)
    finally:
        sampler.close()
    assert rollout.truncated.any()
    assert (rollout.final_observations[~rollout.truncated] == 0).all()


# -- values that are finite in float64 but not in float32, where they are stored -----


@pytest.mark.parametrize("value", [1e39, -1e39])
@pytest.mark.parametrize("what", ["observation", "reward"])
def test_value_beyond_float32_raises_naming_env_index_and_step(policies, what, value):
    T = 4
    inject = {"nan_obs_at": [None, 2, None]} if what == "observation" else {}
    inject = inject or {"nan_reward_at": [None, 2, None]}
    envs = _vector_env(ACTION_SPACES["discrete"], bad_value=value, obs_dtype=np.float64, **inject)
    sampler = _sampler(envs, policies["discrete"], T, env_name="huge-env")
    try:
        with pytest.raises(NonFiniteEnvError) as raised:
            sampler.collect(policy_version=1)
    finally:
        sampler.close()
    message = str(raised.value)
    assert "\n" not in message
    assert "environment 'huge-env' (env index 1)" in message
    assert f"{what} of {value:.4g}" in message
    assert f"env step {2 * N_ENVS}" in message
    assert "beyond float32" in message and "env.clip_nonfinite: true" in message


def test_final_observation_beyond_float32_raises(policies):
    # Env 2 truncates at its 3rd step, whose (final) observation is out of range.
    envs = _vector_env(
        ACTION_SPACES["discrete"],
        truncate_at=[None, None, 3],
        nan_obs_at=[None, None, 3],
        bad_value=1e39,
        obs_dtype=np.float64,
    )
    sampler = _sampler(envs, policies["discrete"], 4)
    try:
        with pytest.raises(NonFiniteEnvError, match=r"\(env index 2\) returned a final obs"):
            sampler.collect(policy_version=1)
    finally:
        sampler.close()


def test_values_beyond_float32_are_replaced_when_clipping(policies):
    T = 4
    envs = _vector_env(
        ACTION_SPACES["discrete"],
        nan_obs_at=[None, 2, None],
        nan_reward_at=[3, None, None],
        bad_value=[None, 1e39, None],
        obs_dtype=np.float64,
    )
    envs.envs[0].unwrapped.bad_value = -1e39
    sampler = _sampler(envs, policies["discrete"], T, clip_nonfinite=True)
    try:
        rollout = sampler.collect(policy_version=1)
    finally:
        sampler.close()
    assert rollout.nonfinite_replaced == 2
    assert rollout.observations[2, 1, 0] == 1e6  # the bound, not inf
    assert rollout.raw_rewards[2, 0] == -1e6
    assert rollout.rewards[2, 0] == -1e6
    for name in ("observations", "raw_rewards", "rewards", "behavior_log_prob"):
        assert np.isfinite(getattr(rollout, name)).all(), name


def test_large_values_within_float32_are_normalized_without_overflow(policies):
    """1e25 squares to 1e50: beyond float32, but the normalizers keep float64 statistics."""
    T = 6
    envs = _vector_env(
        ACTION_SPACES["discrete"],
        nan_obs_at=[2, None, None],
        nan_reward_at=[None, 3, None],
        bad_value=1e25,
        obs_dtype=np.float64,
    )
    sampler = _sampler(envs, policies["discrete"], T, normalize_obs=True, normalize_reward=True)
    try:
        rollout = sampler.collect(policy_version=1)
    finally:
        sampler.close()
    for name in ("observations", "rewards", "raw_rewards", "last_observations"):
        assert np.isfinite(getattr(rollout, name)).all(), name
    assert rollout.raw_rewards[2, 1] == np.float32(1e25)
    assert 0 < rollout.rewards[2, 1] <= 10.0  # scaled, then clipped
    for stats in (sampler.obs_norm.stats, sampler.reward_norm.stats):
        assert np.isfinite(stats.mean).all() and np.isfinite(stats.var).all()
    assert np.isfinite(sampler.reward_norm.returns).all()


@pytest.mark.parametrize("which", ["observation", "reward"])
def test_normalizer_overflow_names_the_normalizer_and_the_env(policies, which):
    envs = _vector_env(ACTION_SPACES["discrete"])
    sampler = _sampler(
        envs,
        policies["discrete"],
        4,
        env_name="big-env",
        normalize_obs=True,
        normalize_reward=True,
    )
    # Statistics at the edge of float64: the next update overflows.
    if which == "observation":
        sampler.obs_norm.stats.var[:] = 1.7e308
        sampler.obs_norm.stats.count = 1e6
    else:
        sampler.reward_norm.returns[:] = 1.7e308
        sampler.reward_norm.gamma = 1.5
    try:
        with pytest.raises(NormalizerOverflowError) as raised, np.errstate(over="ignore"):
            sampler.collect(policy_version=1)
    finally:
        sampler.close()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("environment 'big-env' at env step ")
    assert f"the {which} normalizer's" in message
    assert "overflowed float64" in message


# -- envs that raise, or return a reward that is not a number ---------------------------


def test_env_that_raises_in_step_is_one_line_naming_env_and_call(policies):
    envs = _vector_env(ACTION_SPACES["discrete"], raise_in_step_at=[None, 2, None])
    sampler = _sampler(envs, policies["discrete"], 4, env_name="broken-env")
    try:
        with pytest.raises(EnvRuntimeError) as raised:
            sampler.collect(policy_version=1)
    finally:
        sampler.close()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(
        f"environment 'broken-env' (env index 1) raised in step() at env step {2 * N_ENVS}: "
        "EnvBroke: env 1 diverged at life step 2; "
    )
    assert isinstance(raised.value.__cause__, RuntimeError)  # the env's own error, chained


def test_env_that_raises_in_reset_after_an_episode_is_one_line(policies):
    # Env 1 terminates at its 3rd step; its reset then raises.
    envs = _vector_env(
        ACTION_SPACES["discrete"], terminate_at=[None, 3, None], raise_in_reset_after=1
    )
    sampler = _sampler(envs, policies["discrete"], 5, env_name="broken-env")
    try:
        with pytest.raises(EnvRuntimeError) as raised:
            sampler.collect(policy_version=1)
    finally:
        sampler.close()
    assert str(raised.value).startswith(
        f"environment 'broken-env' (env index 1) raised in reset() at env step {3 * N_ENVS}: "
        "EnvBroke: env 1 cannot reset; "
    )


def test_env_that_raises_in_its_first_reset_is_one_line(policies):
    envs = _vector_env(ACTION_SPACES["discrete"], raise_in_reset_after=[1, 1, 0])
    with pytest.raises(EnvRuntimeError) as raised:
        _sampler(envs, policies["discrete"], 4, env_name="broken-env")
    envs.close()
    assert str(raised.value).startswith(
        "environment 'broken-env' raised in reset() at env step 0: EnvBroke: env 2 cannot reset"
    )


def test_reward_that_is_not_a_number_is_one_line(policies):
    envs = _vector_env(ACTION_SPACES["discrete"], reward_as=[float, float, str])
    sampler = _sampler(envs, policies["discrete"], 4, env_name="text-env")
    try:
        with pytest.raises(EnvRuntimeError) as raised:
            sampler.collect(policy_version=1)
    finally:
        sampler.close()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(
        f"environment 'text-env' (env index 2) returned a reward of type str ('1') from step() "
        f"at env step {N_ENVS}"
    )


# -- observation normalization, as the rollout stores it --------------------------------


def _prior_stats(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean/var of ``history`` ``[n, d]`` combined with the normalizer's prior (0, 1, 1e-4)."""
    prior = 1e-4
    n = len(history)
    total = prior + n
    data_mean = history.mean(axis=0)
    mean = data_mean * n / total
    m2 = prior + ((history - data_mean) ** 2).sum(axis=0) + data_mean**2 * prior * n / total
    return mean, m2 / total


def _normalized(observation: np.ndarray, history: np.ndarray) -> np.ndarray:
    mean, var = _prior_stats(history)
    return np.clip((observation - mean) / np.sqrt(var + 1e-8), -10.0, 10.0)


def test_stored_observations_are_normalized_with_statistics_that_include_them(policies):
    """Row t is normalized after its own raw observation was folded into the statistics."""
    T = 8
    sampler = _sampler(_ending_envs(), policies["discrete"], T, normalize_obs=True)
    try:
        rollout = sampler.collect(policy_version=1)
    finally:
        sampler.close()
    # Raw observation of env i at row t: [t mod L_i, i] (episodes restart at 0).
    raw = np.stack(
        [np.stack([[t % length, i] for i, length in enumerate(LENGTHS)]) for t in range(T + 1)]
    ).astype(np.float64)
    for t in range(T):
        history = raw[: t + 1].reshape(-1, OBS_DIM)
        np.testing.assert_allclose(
            rollout.observations[t], _normalized(raw[t], history), rtol=1e-5, atol=1e-5
        )
    # s_T is normalized, not folded in (the next rollout folds it in first).
    np.testing.assert_allclose(
        rollout.last_observations,
        _normalized(raw[T], raw[:T].reshape(-1, OBS_DIM)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_final_observations_of_truncated_steps_are_normalized(policies):
    T = 8
    sampler = _sampler(_ending_envs(), policies["discrete"], T, normalize_obs=True)
    try:
        rollout = sampler.collect(policy_version=1)
    finally:
        sampler.close()
    raw = np.stack(
        [np.stack([[t % length, i] for i, length in enumerate(LENGTHS)]) for t in range(T)]
    ).astype(np.float64)
    checked = 0
    for t, i in zip(*np.nonzero(rollout.truncated), strict=True):
        true_next = np.array([LENGTHS[i], i], np.float64)  # the raw s_{t+1} before the reset
        expected = _normalized(true_next, raw[: t + 1].reshape(-1, OBS_DIM))
        np.testing.assert_allclose(rollout.final_observations[t, i], expected, rtol=1e-5, atol=1e-5)
        assert not np.allclose(rollout.final_observations[t, i], true_next)
        checked += 1
    assert checked >= 3  # env 0 at t = 3 and 7, env 2 at t = 4
