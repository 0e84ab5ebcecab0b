"""``runner.kind: ray`` end to end on one local Ray instance: learning, resume, kill -9.

Every run shares the module's Ray instance (started once, ~5 s); its workers
register ``KillOnceCartPole-v1`` (``paced_env.py``) as they start.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from ray_support import local_ray

from trpo_tf.config import experiment_from_dict
from trpo_tf.train import train

pytest.importorskip("ray", reason="ray is not installed (pip install 'trpo_tf[ray]')")

BATCH = 512  # steps_per_iteration: 4 envs × 128 steps, 2 workers × 256-step segments
SEGMENT = BATCH // 2


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    import paced_env  # noqa: F401 - registers KillOnceCartPole-v1 here too

    with local_ray(num_cpus=3, setup_hook="paced_env.register") as ray:
        yield ray


def _config(total_steps: int, **overrides: Any):
    sections: dict[str, Any] = {
        "env": {"id": "CartPole-v1", "n_envs": 4},
        "runner": {"kind": "ray", "workers": 2, "max_policy_lag": 1},
        "trainer": {"steps_per_iteration": BATCH, "total_steps": total_steps},
        "value": {"epochs": 2},
        "eval": {"every": 1000, "episodes": 3},
        "checkpoint": {"every": 0},
        "tracking": {"tensorboard": False},
    }
    for section, values in overrides.items():
        sections[section] = {**sections.get(section, {}), **values}
    return experiment_from_dict(sections)


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _summary(run: Path) -> dict[str, Any]:
    return json.loads((run / "summary.json").read_text())


def _assert_within_budget(summary: dict[str, Any], total_steps: int) -> None:
    assert summary["env_steps"] <= total_steps
    assert summary["env_steps"] == summary["trained_steps"] + summary["dropped_steps"]


def test_ray_learns_cartpole_within_the_step_budget(tmp_path: Path) -> None:
    total = 24 * BATCH + 100  # 12,388: 24 iterations and room for no extra segment
    result = train(
        _config(total, eval={"episodes": 5}, trainer={"max_kl": 0.02}),
        tmp_path / "run",
        quiet=True,
    )
    summary, rows = _summary(tmp_path / "run"), _rows(tmp_path / "run")
    assert result.final_eval_return >= 150.0  # random: ~20; solved: 500
    _assert_within_budget(summary, total)
    assert summary["trained_steps"] == 24 * BATCH == summary["env_steps"]  # nothing dropped
    assert summary["worker_restarts"] == 0
    # Ray's start-up is part of the run's time.
    assert 0.0 < summary["runner_start_s"] <= float(rows[0]["wall_time_s"])
    assert max(float(row["policy_lag_max"]) for row in rows) <= 1.0
    assert all(int(row["env_steps"]) <= total for row in rows)


def test_ray_run_resumes_with_a_larger_budget(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_config(2 * BATCH, checkpoint={"every": 1}), run, quiet=True)
    train(_config(4 * BATCH, checkpoint={"every": 1}), run, quiet=True, resume=True)
    rows, summary = _rows(run), _summary(run)
    assert [int(row["iteration"]) for row in rows] == [1, 2, 3, 4]
    # The new workers wait for the restored policy: no segment of the old weights to drop.
    assert [int(row["env_steps"]) for row in rows] == [BATCH, 2 * BATCH, 3 * BATCH, 4 * BATCH]
    assert summary["dropped_steps"] == 0 and summary["trained_steps"] == 4 * BATCH
    _assert_within_budget(summary, 4 * BATCH)


def _killed_run(tmp_path: Path, total_steps: int) -> tuple[list[dict[str, str]], dict]:
    marker = tmp_path / "killed"
    config = _config(
        total_steps,
        env={"id": "KillOnceCartPole-v1", "kwargs": {"kill_at": 300, "marker": str(marker)}},
    )
    train(config, tmp_path / "run", quiet=True)
    assert marker.exists()  # one worker sent itself SIGKILL in its second segment
    return _rows(tmp_path / "run"), _summary(tmp_path / "run")


def test_a_worker_killed_with_sigkill_costs_exactly_its_segment(tmp_path: Path) -> None:
    rows, summary = _killed_run(tmp_path, 4 * BATCH + SEGMENT)
    assert summary["worker_restarts"] == 1 and int(rows[-1]["worker_restarts"]) == 1
    assert [int(row["iteration"]) for row in rows] == [1, 2, 3, 4]
    # The killed worker's segment in flight, and nothing else, is lost; the budget had room.
    assert summary["dropped_steps"] == SEGMENT == int(rows[-1]["dropped_steps"])
    assert summary["env_steps"] == 4 * BATCH + SEGMENT
    _assert_within_budget(summary, 4 * BATCH + SEGMENT)


def test_a_killed_worker_with_no_room_in_the_budget_ends_the_run_early(tmp_path: Path) -> None:
    rows, summary = _killed_run(tmp_path, 4 * BATCH)
    # The lost segment leaves room for half of the last batch: the run stops after 3,
    # and that half batch counts as dropped too.
    assert [int(row["iteration"]) for row in rows] == [1, 2, 3]
    assert summary["trained_steps"] == 3 * BATCH
    assert summary["env_steps"] == 4 * BATCH
    assert summary["dropped_steps"] == 2 * SEGMENT
    _assert_within_budget(summary, 4 * BATCH)
