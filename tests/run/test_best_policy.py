"""eval.keep_best (RUN_DIR/best with its own export) and eval.stochastic."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from run_configs import tiny_config

from trpo_tf.export.loading import evaluate_export
from trpo_tf.run.best import read_record
from trpo_tf.train import train

TIMING = {"wall_time_s", "fps", "rollout_time_s", "update_time_s"}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """The same run with and without eval.stochastic."""
    parent = tmp_path_factory.mktemp("best")
    evaluation = {"every": 2, "episodes": 3}
    train(
        tiny_config(2048, eval={**evaluation, "stochastic": True}),
        parent / "run",
        quiet=True,
        trackers=[],
    )
    train(tiny_config(2048, eval=evaluation), parent / "plain", quiet=True, trackers=[])
    return parent / "run", parent / "plain"


@pytest.fixture(scope="module")
def evaluated_run(runs: tuple[Path, Path]) -> Path:
    return runs[0]


def test_the_best_evaluation_is_kept_with_its_own_export(evaluated_run: Path) -> None:
    rows = [r for r in _rows(evaluated_run) if r["eval_return"]]
    returns = [float(r["eval_return"]) for r in rows]
    # The best evaluation, the later one on a tie.
    best = max(range(len(rows)), key=lambda i: (returns[i], i))
    record = read_record(evaluated_run)
    assert record.iteration == int(rows[best]["iteration"])
    assert record.eval_return == returns[best]
    summary = json.loads((evaluated_run / "summary.json").read_text())
    assert summary["best_eval_return"] == returns[best]
    assert summary["best_iteration"] == record.iteration
    assert summary["final_eval_return"] == returns[-1]
    metadata = json.loads((evaluated_run / "best" / "export" / "metadata.json").read_text())
    final_metadata = json.loads((evaluated_run / "export" / "metadata.json").read_text())
    assert final_metadata["policy"] == "final"
    if record.iteration != int(rows[-1]["iteration"]):
        assert metadata["policy"].startswith(f"best (iteration {record.iteration}")
    # Each export acts like the policy its label names (the run's own eval seeds).
    seed = 10_000  # config seed 0 + the evaluation offset
    best_returns = evaluate_export(evaluated_run / "best" / "export", episodes=3, seed=seed)
    final_returns = evaluate_export(evaluated_run / "export", episodes=3, seed=seed)
    assert best_returns.mean() == pytest.approx(returns[best])
    assert final_returns.mean() == pytest.approx(returns[-1])


def test_stochastic_evaluation_is_reported_and_changes_no_training(runs) -> None:
    evaluated_run, plain = runs
    rows = _rows(evaluated_run)
    assert all(bool(r["eval_return_stochastic"]) == bool(r["eval_return"]) for r in rows)

    def training(table: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k != "eval_return_stochastic"} for r in table]

    assert training(rows) == training(_rows(plain))


def test_the_best_survives_a_resume(evaluated_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(evaluated_run, copy)
    before = read_record(copy)
    config = tiny_config(4096, eval={"every": 2, "episodes": 3, "stochastic": True})
    train(config, copy, quiet=True, resume=True, trackers=[])
    after = read_record(copy)
    rows = [r for r in _rows(copy) if r["eval_return"]]
    returns = np.array([float(r["eval_return"]) for r in rows])
    assert after.eval_return == returns.max() >= before.eval_return


def test_keep_best_off_writes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(tiny_config(512, eval={"every": 1, "keep_best": False}), run_dir, quiet=True)
    assert not (run_dir / "best").exists()
    assert "best_eval_return" not in json.loads((run_dir / "summary.json").read_text())
