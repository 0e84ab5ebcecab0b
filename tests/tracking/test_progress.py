"""Progress lines: fps and ETA count from the first iteration of this process."""

from __future__ import annotations

import io

import pytest

from trpo_tf.tracking import progress as progress_module
from trpo_tf.tracking.progress import Progress


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: now[0])
    return now


def test_setup_time_is_not_counted(clock):
    stream = io.StringIO()
    progress = Progress(10_000, stream=stream)
    clock[0] += 15.0  # building the agent, starting trackers
    progress.begin(0)
    clock[0] += 2.0
    progress.update(1, 2_000, 10.0, 0.01)
    line = stream.getvalue()
    assert "1,000 fps" in line and "ETA 00:08" in line, line


def test_resumed_steps_are_not_counted(clock):
    stream = io.StringIO()
    progress = Progress(100_000, stream=stream)
    progress.begin(50_000)  # a resumed run: 50k steps done by an earlier process
    clock[0] += 4.0
    progress.update(26, 52_000, 10.0, 0.01)
    line = stream.getvalue()
    assert "500 fps" in line and "ETA 01:36" in line, line
