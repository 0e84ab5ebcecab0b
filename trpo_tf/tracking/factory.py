"""Trackers an experiment asks for, besides the always-on run directory."""

from __future__ import annotations

from pathlib import Path

from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.interfaces import Tracker


def build_trackers(config: ExperimentConfig, run_dir: Path) -> list[Tracker]:
    """Trackers enabled by ``config.tracking``.

    Always a learning-curve PNG at the end; TensorBoard event files unless
    ``tracking.tensorboard: false``; a W&B run when ``tracking.wandb.enabled`` and
    its mode is not ``disabled`` (last, so it finishes after the local files exist).
    """
    from trpo_tf.tracking.plots import CurvePlotTracker

    trackers: list[Tracker] = []
    if config.tracking.tensorboard:
        from trpo_tf.tracking.tensorboard import TensorBoardTracker

        trackers.append(TensorBoardTracker(run_dir))
    trackers.append(CurvePlotTracker())
    wandb = config.tracking.wandb
    if wandb.enabled and wandb.mode != "disabled":
        from trpo_tf.tracking.wandb_tracker import WandbTracker

        trackers.append(WandbTracker(config, run_dir))
    return trackers
