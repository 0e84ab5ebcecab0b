"""Which segments each rollout worker has out, and where an arrived one goes.

The bookkeeping of :class:`~trpo_tf.rollout.async_runner.AsyncRunner`'s flow control,
without the processes: a pure object that a test can drive step by step.

A segment is *granted* to worker ``w`` (it may step ``T`` steps), then *in flight*
until it arrives. An arrived segment carries the version ``v`` of the snapshot that
acted. With π_old's version ``p`` and the largest lag ``K`` the batch being filled
accepts ``v ≥ oldest = p − K`` and the next batch accepts ``v ≥ keep_from = oldest + 1``:

* ``v < oldest``: stale, dropped;
* ``oldest ≤ v < keep_from``: used now or never, so accepted;
* ``v ≥ keep_from``: it could wait a batch, so it is accepted only while the batch
  still has room for every in-flight segment that cannot wait (granted with a
  version ``< keep_from``), and otherwise *held* for the next batch.

Each worker has at most one segment outstanding (in flight or held), and no grant
takes the env steps past the step budget or asks for more segments than the
remaining batches need.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from trpo_tf.rollout.segment import Segment

Placed = tuple[Segment, Any]
"""An arrived segment and its learning rewards ``[T, k]``."""


class SegmentLedger:
    """Grants, in-flight segments, held and accepted segments of ``workers`` workers.

    Args:
        workers: number of workers ``W`` (a batch is ``W`` segments).
        segment_steps: env steps of one segment, ``T · k``.
        step_budget: most env steps to collect, dropped ones included (None: no
            limit); it also sets the number of batches, ``step_budget // (W · T · k)``.
    """

    def __init__(self, workers: int, segment_steps: int, step_budget: int | None) -> None:
        self.workers = int(workers)
        self.segment_steps = int(segment_steps)
        self.step_budget = None if step_budget is None else int(step_budget)
        self.batches_total = (
            None
            if self.step_budget is None
            else self.step_budget // (self.workers * self.segment_steps)
        )
        self.in_flight = dict.fromkeys(range(self.workers), 0)
        # Per worker, the snapshot version sent before each in-flight grant: a lower
        # bound of the version that segment will carry.
        self._grant_versions: dict[int, deque[int]] = {w: deque() for w in range(self.workers)}
        self.held: list[Placed] = []  # arrived, kept for the next batch
        self.accepted: list[Placed] = []  # the batch being filled

    # -- counts ---------------------------------------------------------------------

    def in_flight_total(self) -> int:
        return sum(self.in_flight.values())

    def outstanding(self) -> int:
        """Segments granted and not yet in a returned batch: in flight, held, accepted."""
        return self.in_flight_total() + len(self.held) + len(self.accepted)

    def has_outstanding(self, index: int) -> bool:
        """Worker ``index`` has a segment in flight or held (it may have one at most)."""
        return bool(self.in_flight[index]) or any(
            segment.worker == index for segment, _ in self.held
        )

    def batch_full(self) -> bool:
        return len(self.accepted) >= self.workers

    def may_grant(self, total_env_steps: int, batches_returned: int) -> bool:
        """Within the step budget, and some remaining batch still needs a segment."""
        if self.step_budget is None:
            return True
        in_flight_steps = (self.in_flight_total() + 1) * self.segment_steps
        if total_env_steps + in_flight_steps > self.step_budget:
            return False
        assert self.batches_total is not None
        return self.outstanding() < (self.batches_total - batches_returned) * self.workers

    # -- events -----------------------------------------------------------------------

    def granted(self, index: int, version: int) -> None:
        """Worker ``index`` was granted a segment while the newest snapshot was ``version``."""
        self.in_flight[index] += 1
        self._grant_versions[index].append(version)

    def arrived(self, index: int) -> None:
        """Worker ``index``'s oldest in-flight segment arrived."""
        self.in_flight[index] -= 1
        if self._grant_versions[index]:
            self._grant_versions[index].popleft()

    def lost(self, index: int) -> int:
        """Worker ``index`` died: forget its in-flight segments; returns their env steps."""
        steps = self.in_flight[index] * self.segment_steps
        self.in_flight[index] = 0
        self._grant_versions[index].clear()
        return steps

    # -- placing arrived segments -----------------------------------------------------

    def place(self, segment: Segment, rewards: Any, oldest: int, keep_from: int) -> int:
        """Accept, hold or drop an arrived segment; returns the env steps dropped."""
        if segment.policy_version < oldest:
            return segment.num_steps  # too old for this batch: stale
        if segment.policy_version >= keep_from:
            # It could wait a batch: take it only if every segment in flight that
            # cannot wait still finds room in this batch.
            must_use = sum(
                version < keep_from
                for versions in self._grant_versions.values()
                for version in versions
            )
            if len(self.accepted) + 1 + must_use > self.workers:
                self.held.append((segment, rewards))
                return 0
        self.accepted.append((segment, rewards))
        return 0

    def take_held(self, oldest: int, keep_from: int) -> int:
        """Place the held segments (oldest first) into the batch being filled."""
        held, self.held = self.held, []
        dropped = 0
        for position, (segment, rewards) in enumerate(held):
            if self.batch_full():
                self.held.extend(held[position:])
                break
            dropped += self.place(segment, rewards, oldest, keep_from)
        return dropped

    def take_batch(self) -> list[Placed]:
        """The accepted segments, in arrival order; the next batch starts empty."""
        accepted, self.accepted = self.accepted, []
        return accepted

    def discard_arrived(self) -> int:
        """Drop every accepted and held segment; returns their env steps."""
        unused = sum(segment.num_steps for segment, _ in self.accepted + self.held)
        self.accepted, self.held = [], []
        return unused

    def forget_held(self) -> None:
        """Drop the held segments without counting them (a restore replaces the run)."""
        self.held = []
