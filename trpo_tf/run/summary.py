"""What a finished run reports: :class:`TrainResult` and ``summary.json``'s fields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainResult:
    """What :func:`~trpo_tf.train.train` returns (also written to ``summary.json``)."""

    run_dir: Path
    env_steps: int
    wall_time_s: float
    final_eval_return: float
    final_eval_return_std: float
    eval_episodes: int
    export_skipped: str = ""

    @property
    def steps_per_s(self) -> float:
        return self.env_steps / self.wall_time_s if self.wall_time_s > 0 else 0.0


def summary_of(
    result: TrainResult,
    *,
    iterations: int,
    update_retraces: int,
    update_devices: list[str],
    eval_time_s: float,
    train_time_s: float,
    trained_steps: int,
    dropped_steps: int,
    worker_restarts: int,
    runner_start_s: float,
    best: dict[str, Any],
) -> dict[str, Any]:
    """``summary.json``: the result, where and how fast the update ran, the runner's totals.

    ``train_time_s`` is the loop up to the last value fit (evaluations included, the
    final checkpoint, policy save and export not); ``best`` is
    :func:`~trpo_tf.run.best.best_summary`'s fields.
    """
    return {
        "env_steps": result.env_steps,
        "wall_time_s": round(result.wall_time_s, 3),
        "steps_per_s": round(result.steps_per_s, 1),
        "final_eval_return": result.final_eval_return,
        "final_eval_return_std": result.final_eval_return_std,
        "eval_episodes": result.eval_episodes,
        "iterations": iterations,
        "update_retraces": update_retraces,
        # Where θ lives, so where the compiled policy step ran (e.g. ["GPU:0"]).
        "update_devices": update_devices,
        "eval_time_s": round(eval_time_s, 3),
        # Training alone: the loop up to the last value fit, without its evaluations
        # and without the final checkpoint, policy save and SavedModel export.
        "train_time_s": round(train_time_s, 3),
        "finalize_time_s": round(result.wall_time_s - train_time_s, 3),
        "train_steps_per_s": round(result.env_steps / max(train_time_s - eval_time_s, 1e-9), 1),
        "export_skipped": result.export_skipped or None,
        # [rollout] env_steps = trained_steps + dropped_steps (all collected steps count
        # against trainer.total_steps); runner_start_s is part of wall_time_s.
        "trained_steps": trained_steps,
        "dropped_steps": dropped_steps,
        "worker_restarts": worker_restarts,
        "runner_start_s": round(runner_start_s, 3),
        **best,
    }
