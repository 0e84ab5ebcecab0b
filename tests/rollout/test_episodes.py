"""EpisodeCounter: running returns/lengths per env, finished episodes drained once."""

from __future__ import annotations

import numpy as np

from trpo_tf.rollout.episodes import EpisodeCounter


def test_counts_records_discards_and_drains() -> None:
    counter = EpisodeCounter(3)
    counter.add(np.array([1.0, 2.0, 3.0]))
    counter.add(np.array([0.5, 0.5]), np.array([0, 2]))
    counter.end(0)
    counter.discard(1)
    np.testing.assert_array_equal(counter.returns, [0.0, 0.0, 3.5])
    np.testing.assert_array_equal(counter.lengths, [0, 0, 2])
    returns, lengths = counter.drain()
    np.testing.assert_array_equal(returns, [1.5])
    np.testing.assert_array_equal(lengths, [2])
    assert counter.drain()[0].size == 0


def test_state_round_trip_is_a_copy() -> None:
    counter = EpisodeCounter(2)
    counter.add(np.array([1.0, -1.0]))
    state = counter.state()
    counter.add(np.array([1.0, 1.0]))
    restored = EpisodeCounter(2)
    restored.load_state(state)
    np.testing.assert_array_equal(restored.returns, [1.0, -1.0])
    np.testing.assert_array_equal(restored.lengths, [1, 1])
