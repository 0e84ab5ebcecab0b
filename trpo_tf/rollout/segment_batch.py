"""From arrived segments to the learner's batch (learner side of the async runners).

:func:`segment_rewards` scales one segment's rewards with the learner's reward
normalizer, on the columns of the worker that collected it; :func:`assemble_rollout`
joins ``W`` accepted segments ``[T, k, ...]`` into one
:class:`~trpo_tf.types.Rollout` ``[T, W·k, ...]``, each step tagged with the version
of the behavior policy β that took it; :class:`BatchFill` is what one batch gathers
beside its segments while they arrive.
"""

from __future__ import annotations

import time

import numpy as np

from trpo_tf.normalization import RewardNormalizer
from trpo_tf.rollout.segment import Segment
from trpo_tf.types import Rollout


class BatchFill:
    """What one ``AsyncRunner.collect`` gathers beside the segments its ledger holds.

    ``oldest``: the oldest policy version this batch accepts (``policy_version − K``);
    ``keep_from``: the oldest the *next* batch accepts, so a segment older than that is
    used now or never. ``deadline``: when the workers' silence becomes a stall.
    """

    def __init__(self, policy_version: int, max_policy_lag: int, stall_timeout_s: float) -> None:
        self.oldest = policy_version - max_policy_lag
        self.stall_timeout_s = stall_timeout_s
        self.deadline = 0.0
        self.restart_clock()
        self.dropped = 0
        self.episode_returns: list[np.ndarray] = []
        self.episode_lengths: list[np.ndarray] = []

    @property
    def keep_from(self) -> int:
        return self.oldest + 1

    def restart_clock(self) -> None:
        """A worker delivered or was restarted: the stall timeout starts again."""
        self.deadline = time.monotonic() + self.stall_timeout_s


def segment_rewards(reward_norm: RewardNormalizer, segment: Segment, k: int) -> np.ndarray:
    """The rewards ``[T, k]`` the learner trains on, float32.

    Worker ``w`` owns columns ``[w·k, (w+1)·k)`` of the normalizer's running return
    state; the segment's steps advance those columns only.
    """
    if not reward_norm.enabled:
        return segment.raw_rewards.astype(np.float32)
    columns = slice(segment.worker * k, (segment.worker + 1) * k)
    done = np.logical_or(segment.terminated, segment.truncated)
    all_returns = reward_norm.returns
    reward_norm.returns = all_returns[columns].copy()
    try:
        scaled = np.stack([reward_norm(segment.raw_rewards[t], done[t]) for t in range(len(done))])
        all_returns[columns] = reward_norm.returns
    finally:
        reward_norm.returns = all_returns
    return scaled


def assemble_rollout(
    accepted: list[tuple[Segment, np.ndarray]],
    *,
    dropped: int,
    episode_returns: list[np.ndarray],
    episode_lengths: list[np.ndarray],
    nonfinite_replaced: int,
) -> Rollout:
    """One batch from ``accepted`` (segment, its learning rewards), in worker order.

    Args:
        accepted: ``W`` segments of ``T`` steps × ``k`` envs and their ``[T, k]``
            rewards from :func:`segment_rewards`; sorted here by (worker, sequence).
        dropped: steps collected for this batch but not in it.
        episode_returns, episode_lengths: episodes that ended in the arrived segments.
        nonfinite_replaced: the runner's running count of replaced non-finite values.
    """
    accepted = sorted(accepted, key=lambda item: (item[0].worker, item[0].sequence))
    segments = [segment for segment, _ in accepted]

    def cat(name: str, axis: int = 1) -> np.ndarray:
        return np.concatenate([getattr(s, name) for s in segments], axis=axis)

    # A recurrent β's memory: every column is one env's T consecutive steps (one
    # segment), so a sequence of L | T steps never spans two segments.
    recurrent = segments[0].episode_starts is not None
    policy_states = tuple(
        np.concatenate([s.policy_states[j] for s in segments], axis=1)
        for j in range(len(segments[0].policy_states))
    )
    return Rollout(
        observations=cat("observations"),
        actions=cat("actions"),
        rewards=np.concatenate([rewards for _, rewards in accepted], axis=1),
        raw_rewards=cat("raw_rewards").astype(np.float32),
        terminated=cat("terminated"),
        truncated=cat("truncated"),
        final_observations=cat("final_observations"),
        last_observations=cat("last_observations", axis=0),
        behavior_log_prob=cat("behavior_log_prob"),
        behavior_params=cat("behavior_params"),
        policy_version=np.concatenate(
            [np.full(s.raw_rewards.shape, s.policy_version, np.int64) for s in segments], axis=1
        ),
        episode_returns=np.concatenate(episode_returns),
        episode_lengths=np.concatenate(episode_lengths),
        nonfinite_replaced=nonfinite_replaced,
        dropped_steps=int(dropped),
        episode_starts=cat("episode_starts") if recurrent else None,
        policy_states=policy_states,
    )
