"""Per-env episode bookkeeping shared by the synchronous sampler and the async workers."""

from __future__ import annotations

from typing import Any

import numpy as np


class EpisodeCounter:
    """Return and length of each env's current episode, and the episodes finished.

    Attributes:
        returns: ``[n_envs]`` float64, undiscounted return so far of each env's episode.
        lengths: ``[n_envs]`` int64, steps so far of each env's episode.
    """

    def __init__(self, n_envs: int) -> None:
        self.returns = np.zeros(n_envs, np.float64)
        self.lengths = np.zeros(n_envs, np.int64)
        self._finished_returns: list[float] = []
        self._finished_lengths: list[int] = []

    def add(self, rewards: np.ndarray, envs: Any = slice(None)) -> None:
        """One step of ``envs`` (indices or a mask; all by default) with ``rewards``."""
        self.returns[envs] += rewards
        self.lengths[envs] += 1

    def end(self, env: int) -> None:
        """``env``'s episode ended (terminated or truncated): record it, start anew."""
        self._finished_returns.append(float(self.returns[env]))
        self._finished_lengths.append(int(self.lengths[env]))
        self.discard(env)

    def discard(self, env: Any = slice(None)) -> None:
        """Forget ``env``'s episode in progress without recording it."""
        self.returns[env] = 0.0
        self.lengths[env] = 0

    def drain(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``[k]`` float64 and lengths ``[k]`` int64 of the episodes finished
        since the last call."""
        finished = (
            np.asarray(self._finished_returns, np.float64),
            np.asarray(self._finished_lengths, np.int64),
        )
        self._finished_returns, self._finished_lengths = [], []
        return finished

    def state(self) -> dict[str, np.ndarray]:
        """The episodes in progress (what a checkpoint needs)."""
        return {"episode_return": self.returns.copy(), "episode_length": self.lengths.copy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.returns = np.asarray(state["episode_return"], np.float64).copy()
        self.lengths = np.asarray(state["episode_length"], np.int64).copy()
