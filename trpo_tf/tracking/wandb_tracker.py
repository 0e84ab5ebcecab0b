"""Weights & Biases tracking: one W&B run per training run.

The W&B run's config is the resolved experiment, its group the experiment name
(so the seeds of one experiment aggregate), its step axis ``env_steps``. At the
end the run directory's ``config.yaml`` (type ``config``) and, when present, the
exported SavedModel in ``RUN_DIR/export`` (type ``model``) are logged as
artifacts. ``mode: offline`` writes ``RUN_DIR/wandb/offline-run-*`` for a later
``wandb sync``.

Any W&B failure (not installed, no login, bad project, timeout) produces one
:class:`~trpo_tf.tracking.safe.TrackingWarning` and the tracker goes quiet.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trpo_tf import atomic
from trpo_tf.config.loader import to_dict
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.tracking.safe import QuietOnFailure

STEP_METRIC = "env_steps"


RUN_ID_FILE = "wandb_run_id"


def _artifact_name(text: str) -> str:
    """W&B artifact names allow only letters, digits, ``-``, ``_`` and ``.``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def default_run_name(run_dir: Path) -> str:
    """The run directory's name; ``PARENT-seed_N`` for a seed of a ``--seeds`` run."""
    if run_dir.name.startswith("seed_") and run_dir.parent.name:
        return f"{run_dir.parent.name}-{run_dir.name}"
    return run_dir.name


def metrics_for_wandb(row: Mapping[str, Any], step: int) -> dict[str, Any]:
    """The numeric cells of a metrics row (empty cells dropped), plus ``env_steps``."""
    data: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            data[key] = int(value)
        elif isinstance(value, (int, float)):
            data[key] = value
        else:
            try:
                data[key] = float(value)
            except (TypeError, ValueError):
                continue
    data[STEP_METRIC] = int(step)
    return data


def _summary_for_wandb(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Summary values W&B can store (non-finite floats become ``None``)."""
    clean: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        clean[key] = value
    return clean


class WandbTracker:
    """Sends every metrics row and the final summary to a W&B run.

    Args:
        config: the resolved experiment (``config.tracking.wandb`` holds the W&B
            settings; the whole experiment becomes the W&B run config).
        run_dir: the run directory; W&B writes its files below ``run_dir/wandb``.
    """

    def __init__(self, config: ExperimentConfig, run_dir: str | Path) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.guard = QuietOnFailure("W&B")
        self.run: Any = None
        self._wandb: Any = None
        self.guard.call(self._start)

    def _start(self) -> None:
        import wandb

        self._wandb = wandb
        settings = self.config.tracking.wandb
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # A resumed run continues the same W&B run: its id is kept in the run directory.
        id_file = self.run_dir / RUN_ID_FILE
        resume = {"id": id_file.read_text().strip(), "resume": "allow"} if id_file.is_file() else {}
        run = wandb.init(
            **resume,
            project=settings.project,
            entity=settings.entity,
            mode=settings.mode,
            name=settings.name or default_run_name(self.run_dir),
            group=settings.group or self.config.name,
            tags=list(settings.tags) or None,
            config=to_dict(self.config),
            dir=str(self.run_dir),
            job_type="train",
            settings=wandb.Settings(init_timeout=settings.init_timeout, reinit="finish_previous"),
        )
        if run is None:
            raise RuntimeError("wandb.init returned no run")
        self.run = run
        atomic.write_text(id_file, str(run.id) + "\n", "W&B run id")
        run.define_metric(STEP_METRIC)
        run.define_metric("*", step_metric=STEP_METRIC)

    @property
    def active(self) -> bool:
        """Whether metrics still go to W&B (False after a failure or finish)."""
        return self.run is not None and not self.guard.failed

    def log(self, row: Mapping[str, Any], step: int) -> None:
        if self.active:
            self.guard.call(self.run.log, metrics_for_wandb(row, step))

    def finish(self, summary: Mapping[str, Any], run_dir: Any) -> None:
        if not self.active:
            return
        run_dir = Path(run_dir)
        self.guard.call(self.run.summary.update, _summary_for_wandb(summary))
        self.guard.call(self._log_artifacts, run_dir)
        run, self.run = self.run, None
        if self.guard.failed:
            # Still close the W&B run so its files are complete; a second failure
            # stays silent (the one warning has been given).
            with contextlib.suppress(Exception):
                run.finish(exit_code=1)
            return
        self.guard.call(run.finish)

    def _log_artifacts(self, run_dir: Path) -> None:
        wandb = self._wandb
        base = _artifact_name(self.config.name)
        config_file = run_dir / "config.yaml"
        if config_file.is_file():
            artifact = wandb.Artifact(f"{base}-config", type="config")
            artifact.add_file(str(config_file), name="config.yaml")
            self.run.log_artifact(artifact)
        export_dir = run_dir / "export"
        if export_dir.is_dir():
            artifact = wandb.Artifact(f"{base}-policy", type="model")
            artifact.add_dir(str(export_dir))
            self.run.log_artifact(artifact)
