"""Trackers an experiment asks for, besides the always-on run directory."""

from __future__ import annotations

from pathlib import Path

from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.interfaces import Tracker


def build_trackers(config: ExperimentConfig, run_dir: Path) -> list[Tracker]:
    """Trackers enabled by ``config.tracking`` (none by default)."""
    return []
