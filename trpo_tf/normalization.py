"""Running statistics for observation and reward normalization.

Both are part of the trained artifact: their state is saved with the run and the
policy only makes sense with the observation statistics it was trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from trpo_tf.errors import NormalizerOverflowError

# numpy's float sum adds fewer than this many values one after another (pairwise blocks
# from 8 on); below it, Python's sum gives the same bits.
SEQUENTIAL_SUM_MAX = 8


def clip_into(values: np.ndarray, bound: float) -> np.ndarray:
    """``np.clip(values, -bound, bound)`` in place (two ufunc calls, ~2 µs less per call)."""
    np.maximum(values, -bound, out=values)
    return np.minimum(values, bound, out=values)


def _overflow_message(mean: object, var: object, count: float, batch: np.ndarray) -> str:
    """Which running statistic overflowed, and on what values."""
    if not np.isfinite(count):
        name = "count"
    elif not np.isfinite(mean).all():
        name = "mean"
    else:
        name = "variance"
    batch = np.asarray(batch, np.float64)
    if batch.size == 0:
        return f"running {name} became NaN on an empty batch"
    if np.isnan(batch).any():
        return f"running {name} became NaN: the values include NaN"
    return f"running {name} overflowed float64 on values up to {np.abs(batch).max():.4g}"


@dataclass
class RunningMeanStd:
    """Streaming mean/variance (parallel-variance update of Chan et al.).

    Attributes:
        mean: ``[*shape]`` float64.
        var: ``[*shape]`` float64 (population variance).
        count: effective number of samples (starts at a tiny epsilon).

    An update that would make a statistic non-finite (values so large that their
    squares overflow float64) raises :class:`~trpo_tf.errors.NormalizerOverflowError`
    and leaves the statistics as they were.
    """

    shape: tuple[int, ...] = ()
    mean: np.ndarray = field(init=False)
    var: np.ndarray = field(init=False)
    count: float = 1e-4

    def __post_init__(self) -> None:
        self.mean = np.zeros(self.shape, np.float64)
        self.var = np.ones(self.shape, np.float64)

    def update(self, batch: np.ndarray) -> None:
        """Fold in ``batch`` ``[n, *shape]``.

        Raises:
            NormalizerOverflowError: a statistic would overflow (the message names it).
        """
        batch = np.asarray(batch, np.float64)
        if not self.shape and batch.shape[0] < SEQUENTIAL_SUM_MAX:
            self._update_scalar(batch.tolist())
            return
        batch_count = batch.shape[0]
        # np.mean/np.var's arithmetic without their per-call overhead (this runs every
        # env step): sum / n, then the mean of squared deviations.
        batch_mean = np.add.reduce(batch, axis=0) / batch_count
        deviation = batch - batch_mean
        batch_var = np.add.reduce(deviation * deviation, axis=0) / batch_count
        delta = batch_mean - self.mean
        total = self.count + batch_count
        mean = self.mean + delta * batch_count / total
        m2 = (
            self.var * self.count
            + batch_var * batch_count
            + delta**2 * self.count * batch_count / total
        )
        var = m2 / total
        # One sum carries any inf/NaN of either statistic (~1 µs less than two isfinite
        # reductions; it also trips for sums past 1.8e308, statistics about to overflow).
        if not (math.isfinite(np.add.reduce(mean + var, axis=None)) and math.isfinite(total)):
            raise NormalizerOverflowError(_overflow_message(mean, var, total, batch))
        self.mean, self.var, self.count = mean, var, total

    def _update_scalar(self, values: list[float]) -> None:
        """:meth:`update` for scalar statistics in Python floats (the reward's, every step).

        The same operations in the same order as the array path, so the same bits: numpy
        sums fewer than 8 values one after another, as ``sum`` does here.
        """
        n = len(values)
        batch_mean = sum(values) / n
        batch_var = sum((value - batch_mean) * (value - batch_mean) for value in values) / n
        mean, var, count = float(self.mean), float(self.var), self.count
        delta = batch_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = var * count + batch_var * n + delta * delta * count * n / total
        var = m2 / total
        if not (math.isfinite(mean) and math.isfinite(var) and math.isfinite(total)):
            raise NormalizerOverflowError(_overflow_message(mean, var, total, np.asarray(values)))
        self.mean, self.var, self.count = np.float64(mean), np.float64(var), total

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "var": self.var, "count": np.asarray(self.count)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.mean = np.asarray(state["mean"], np.float64)
        self.var = np.asarray(state["var"], np.float64)
        self.count = float(state["count"])


@dataclass
class ObservationNormalizer:
    """o ↦ clip((o − μ) / √(σ² + ε), −clip, clip); identity when disabled."""

    shape: tuple[int, ...]
    enabled: bool
    clip: float = 10.0
    epsilon: float = 1e-8
    stats: RunningMeanStd = field(init=False)

    def __post_init__(self) -> None:
        self.stats = RunningMeanStd(self.shape)

    def __call__(self, observations: np.ndarray, update: bool = False) -> np.ndarray:
        """Normalize ``[n, obs_dim]``; with ``update`` first fold them into the stats."""
        if not self.enabled:
            return np.asarray(observations, np.float32)
        if update:
            self.update(observations)
        normalized = (observations - self.stats.mean) / np.sqrt(self.stats.var + self.epsilon)
        return clip_into(normalized, self.clip).astype(np.float32)

    def update(self, observations: np.ndarray) -> None:
        """Fold ``[n, obs_dim]`` into the statistics (a NormalizerOverflowError names them)."""
        try:
            self.stats.update(observations)
        except NormalizerOverflowError as error:
            raise NormalizerOverflowError(
                f"the observation normalizer's {error}; scale the observations down in "
                "the environment or set env.normalize_obs: false"
            ) from None


@dataclass
class RewardNormalizer:
    """Scales rewards by the running std of the discounted return.

    Per env, G ← γ·G + r (reset at episode end); r ↦ clip(r / √(Var[G] + ε), ±clip).
    Rewards are scaled, not shifted, so the sign of the task is kept.
    """

    n_envs: int
    gamma: float
    enabled: bool
    clip: float = 10.0
    epsilon: float = 1e-8
    stats: RunningMeanStd = field(init=False)
    returns: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.stats = RunningMeanStd(())
        self.returns = np.zeros(self.n_envs, np.float64)

    def __call__(self, rewards: np.ndarray, episode_end: np.ndarray) -> np.ndarray:
        """Normalize one step's rewards ``[n_envs]`` and update the statistics."""
        if not self.enabled:
            return np.asarray(rewards, np.float32)
        returns = self.returns * self.gamma + rewards
        try:
            self.stats.update(returns)
        except NormalizerOverflowError as error:
            what = (
                "discounted return overflowed float64"
                if not np.isfinite(returns).all()
                else str(error)
            )
            raise NormalizerOverflowError(
                f"the reward normalizer's {what} (rewards up to "
                f"{np.max(np.abs(rewards)):.4g}); scale the rewards down in the environment"
            ) from None
        returns[episode_end] = 0.0
        self.returns = returns
        scaled = rewards / np.sqrt(self.stats.var + self.epsilon)
        return clip_into(scaled, self.clip).astype(np.float32)


def normalizer_state(obs: ObservationNormalizer, reward: RewardNormalizer) -> dict[str, np.ndarray]:
    """Flat dict for ``np.savez`` (``normalizer.npz`` in the run directory)."""
    state = {f"obs_{k}": v for k, v in obs.stats.state().items()}
    state.update({f"reward_{k}": v for k, v in reward.stats.state().items()})
    state["reward_returns"] = reward.returns
    state["obs_enabled"] = np.asarray(obs.enabled)
    state["obs_clip"] = np.asarray(obs.clip)
    return state


def load_normalizer_state(
    state: dict[str, np.ndarray], obs: ObservationNormalizer, reward: RewardNormalizer | None
) -> None:
    """Inverse of :func:`normalizer_state`."""
    obs.stats.load_state({k[4:]: state[k] for k in ("obs_mean", "obs_var", "obs_count")})
    if reward is not None:
        reward.stats.load_state(
            {k[7:]: state[k] for k in ("reward_mean", "reward_var", "reward_count")}
        )
        reward.returns = np.asarray(state["reward_returns"], np.float64)
