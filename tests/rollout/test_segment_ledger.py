"""The async runner's flow control, step by step, without worker processes."""

from __future__ import annotations

from dataclasses import dataclass

from trpo_tf.rollout.segment_ledger import SegmentLedger

SEGMENT_STEPS = 8


@dataclass
class ArrivedSegment:
    """What the ledger reads of a segment: who sent it, which snapshot acted, its size."""

    worker: int
    policy_version: int
    num_steps: int = SEGMENT_STEPS


def arrive(ledger: SegmentLedger, worker: int, version: int, oldest: int) -> int:
    ledger.arrived(worker)
    segment = ArrivedSegment(worker, version)
    return ledger.place(segment, f"rewards of {worker}@{version}", oldest, oldest + 1)


def test_a_segment_that_could_wait_is_held_while_an_older_one_needs_the_room() -> None:
    # π_old is version 2, lag 1: this batch takes versions >= 1, the next >= 2.
    ledger = SegmentLedger(workers=2, segment_steps=SEGMENT_STEPS, step_budget=None)
    ledger.accepted.append((ArrivedSegment(1, 1), "earlier"))
    ledger.granted(0, version=1)  # slow worker 0: its segment cannot wait a batch
    ledger.granted(1, version=2)
    assert arrive(ledger, worker=1, version=2, oldest=1) == 0
    assert [segment.worker for segment, _ in ledger.held] == [1]
    assert ledger.has_outstanding(1) and not ledger.batch_full()

    assert arrive(ledger, worker=0, version=1, oldest=1) == 0
    assert ledger.batch_full()
    assert [(s.worker, s.policy_version) for s, _ in ledger.take_batch()] == [(1, 1), (0, 1)]
    assert ledger.accepted == [] and ledger.outstanding() == 1

    # The next batch (π_old version 3) takes the held segment first: now or never.
    assert ledger.take_held(oldest=2, keep_from=3) == 0
    assert ledger.held == [] and [s.policy_version for s, _ in ledger.accepted] == [2]


def test_a_segment_is_taken_at_once_when_nothing_in_flight_needs_the_room() -> None:
    ledger = SegmentLedger(workers=2, segment_steps=SEGMENT_STEPS, step_budget=None)
    ledger.granted(0, version=2)
    ledger.granted(1, version=2)
    assert arrive(ledger, worker=0, version=2, oldest=1) == 0
    assert arrive(ledger, worker=1, version=2, oldest=1) == 0
    assert ledger.held == [] and ledger.batch_full()


def test_a_stale_segment_is_dropped_and_its_steps_counted() -> None:
    ledger = SegmentLedger(workers=2, segment_steps=SEGMENT_STEPS, step_budget=None)
    ledger.granted(0, version=1)
    assert arrive(ledger, worker=0, version=1, oldest=3) == SEGMENT_STEPS
    assert ledger.accepted == [] and ledger.held == [] and ledger.outstanding() == 0


def test_held_segments_beyond_a_full_batch_stay_held_in_arrival_order() -> None:
    ledger = SegmentLedger(workers=2, segment_steps=SEGMENT_STEPS, step_budget=None)
    ledger.held = [(ArrivedSegment(w, 5), w) for w in (2, 0, 1)]
    assert ledger.take_held(oldest=5, keep_from=6) == 0
    assert [s.worker for s, _ in ledger.accepted] == [2, 0]
    assert [s.worker for s, _ in ledger.held] == [1]


def test_the_step_budget_limits_grants_to_the_batches_it_pays_for() -> None:
    # Budget for exactly two batches of two segments.
    ledger = SegmentLedger(workers=2, segment_steps=SEGMENT_STEPS, step_budget=4 * SEGMENT_STEPS)
    assert ledger.batches_total == 2
    for worker in (0, 1, 0, 1):
        assert ledger.may_grant(total_env_steps=0, batches_returned=0)
        ledger.granted(worker, version=1)
    assert not ledger.may_grant(total_env_steps=0, batches_returned=0)  # both batches covered

    # After one batch returned and the steps spent, one more batch's segments are
    # wanted, but the budget has room for only what is already in flight.
    for worker in (0, 1):
        arrive(ledger, worker, version=1, oldest=1)
    ledger.take_batch()
    assert not ledger.may_grant(total_env_steps=2 * SEGMENT_STEPS, batches_returned=1)


def test_a_dead_worker_loses_its_in_flight_steps() -> None:
    ledger = SegmentLedger(workers=2, segment_steps=SEGMENT_STEPS, step_budget=None)
    ledger.granted(1, version=4)
    ledger.granted(1, version=5)
    assert ledger.lost(1) == 2 * SEGMENT_STEPS
    assert not ledger.has_outstanding(1) and ledger.in_flight_total() == 0
    # Its grants no longer reserve room: a segment that could wait is taken.
    ledger.granted(0, version=5)
    assert arrive(ledger, worker=0, version=5, oldest=4) == 0
    assert ledger.held == []


def test_discarding_counts_accepted_and_held_steps() -> None:
    ledger = SegmentLedger(workers=3, segment_steps=SEGMENT_STEPS, step_budget=None)
    ledger.accepted = [(ArrivedSegment(0, 1), None)]
    ledger.held = [(ArrivedSegment(1, 2, num_steps=5), None)]
    assert ledger.discard_arrived() == SEGMENT_STEPS + 5
    assert ledger.outstanding() == 0


def test_no_segment_is_granted_that_no_remaining_batch_needs() -> None:
    # Room in the budget for a fifth segment, but two batches take only four.
    ledger = SegmentLedger(workers=2, segment_steps=SEGMENT_STEPS, step_budget=5 * SEGMENT_STEPS)
    for worker in (0, 1, 0, 1):
        ledger.granted(worker, version=1)
    assert (ledger.in_flight_total() + 1) * SEGMENT_STEPS <= 5 * SEGMENT_STEPS
    assert not ledger.may_grant(total_env_steps=0, batches_returned=0)
    assert SegmentLedger(2, SEGMENT_STEPS, step_budget=None).may_grant(10**9, 10**6)
