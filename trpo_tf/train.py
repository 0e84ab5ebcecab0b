"""``train()``: one run, locked, stoppable, resumable (the phases: :mod:`trpo_tf.run.training`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from trpo_tf.blas import blas_threads
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.heap import frozen_heap
from trpo_tf.interfaces import Tracker
from trpo_tf.plugin_checks import check_plugins
from trpo_tf.resume import resume_point
from trpo_tf.run.lock import LOCK_FILE, locked
from trpo_tf.run.run_state import tf_state
from trpo_tf.run.signals import Stopped, StopRequests
from trpo_tf.run.summary import TrainResult
from trpo_tf.run.training import TrainingRun, make_actor
from trpo_tf.tracking.factory import check_trackers
from trpo_tf.tracking.run_dir import check_new_run_dir, check_run_dir_path

__all__ = ["TrainResult", "make_actor", "tf_state", "train"]


def train(
    config: ExperimentConfig,
    run_dir: str | Path,
    quiet: bool = False,
    progress_every: int = 1,
    trackers: list[Tracker] | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train a TRPO agent as described by ``config``, writing ``run_dir``.

    The run directory is locked for the whole run (a second process gets one line
    naming this one). SIGINT, SIGTERM and SIGHUP stop training after the current
    iteration with a checkpoint of it (:mod:`trpo_tf.run.signals`).

    Args:
        config: the resolved experiment.
        run_dir: where ``config.yaml``, ``metrics.csv``, ``summary.json``,
            checkpoints and the final policy go (created if missing).
        quiet: no progress output.
        progress_every: iterations between plain progress lines (non-TTY).
        trackers: extra metric sinks; ``None`` builds those ``config.tracking``
            enables.
        resume: continue from the newest intact checkpoint in ``run_dir``;
            ``config`` may differ from the experiment stored in it only in
            :data:`trpo_tf.resume.RESUMABLE_KEYS`.

    Raises:
        RunDirError: ``resume`` without an intact checkpoint in ``run_dir``, or a new
            run into a directory that holds one.
        RunInUseError: another live process holds ``run_dir``.
        OutputPathError: ``run_dir`` is (inside) a file.
        ConfigError: ``resume`` with a config that changes a key a resume must keep,
            or a ``trainer.total_steps`` below the steps already trained.
        StorageError: a write failed (disk full, read-only, no permission).
        Stopped: after a stop request (a ``KeyboardInterrupt``), once the
            checkpoint is written.
    """
    run_path = Path(run_dir)
    check_run_dir_path(run_path)
    existed = run_path.is_dir()
    # The imports' objects out of the collector's way (trpo_tf/heap.py), and numpy's BLAS
    # held to the thread budget TensorFlow gets (trpo_tf/blas.py).
    with frozen_heap(), blas_threads(config.trainer.threads):
        try:
            with locked(run_path, "trpo-tf train"), StopRequests() as stops:
                return _train(
                    config, run_path, existed, stops, quiet, progress_every, trackers, resume
                )
        except BaseException:
            _remove_if_only_lock(run_path, existed)
            raise


def _train(
    config: ExperimentConfig,
    run_path: Path,
    existed: bool,
    stops: StopRequests,
    quiet: bool,
    progress_every: int,
    trackers: list[Tracker] | None,
    resume: bool,
) -> TrainResult:
    # Everything that can refuse the run is checked before anything is built or
    # written: a run that cannot start leaves the run directory as it was.
    check_trackers(config)
    check_plugins(config)  # each plug-in once on dummy data (trpo_tf/plugin_checks.py)
    if resume:
        checkpoint, skipped = resume_point(run_path, config)
    else:
        check_new_run_dir(run_path, locked_here=True)
        checkpoint, skipped = None, []
    run = TrainingRun(config, run_path, quiet, progress_every)
    for note in skipped:
        run.progress.message(f"resume: skipped checkpoint {note}", always=True)
    settled = True
    try:
        if checkpoint is not None:
            run.restore(checkpoint)
        run.open(existed, trackers, resumed=checkpoint is not None)
        while not run.done:
            settled = False
            run.iterate()
            settled = True
            stops.settled()
            if stops.requested:
                raise stops.stopped(abandoned=False)
            run.checkpoint_if_due()
        return run.finish()
    except KeyboardInterrupt as interrupt:
        run.stop(interrupt, settled)
        if isinstance(interrupt, Stopped):
            raise
        raise Stopped() from None
    except Exception as error:
        if not stops.requested:
            raise
        # The signal reached the whole process group: rollout processes that do not
        # outlive it (a local Ray instance, env.vector: async) ended mid-iteration.
        stopped = stops.stopped(abandoned=True)
        run.stop(stopped, settled, cause=error)
        raise stopped from None
    finally:
        run.close()


def _remove_if_only_lock(run_path: Path, existed: bool) -> None:
    """A run that stopped before creating anything leaves no directory behind."""
    if existed or not run_path.is_dir():
        return
    if {p.name for p in run_path.iterdir()} <= {LOCK_FILE}:
        shutil.rmtree(run_path, ignore_errors=True)
