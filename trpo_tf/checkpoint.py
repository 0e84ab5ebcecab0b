"""Atomic, rotating checkpoints of everything a run needs to continue exactly.

Layout::

    RUN_DIR/checkpoints/
      iter_000010/        one complete checkpoint (renamed into place when done)
        tf.*              policy, value network, Adam state, TF random generators
        state.pkl         counters, numpy RNG, normalizers, sampler and env state
      iter_000020/
      .tmp-iter_000030/   a checkpoint being written (ignored; removed on next save)

A checkpoint directory is written under a temporary name and renamed only once
complete, so a process killed mid-write (even by SIGKILL) leaves the previous
checkpoint intact and loadable.

Listing checkpoints needs no TensorFlow (the CLI checks a run before loading it);
TensorFlow is imported by the methods that read or write one.
"""

from __future__ import annotations

import os
import pickle
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trpo_tf.errors import RunDirError

if TYPE_CHECKING:
    from trpo_tf.checkpoint_write import CheckpointWriter
    from trpo_tf.config.schema import CheckpointConfig

_PREFIX = "iter_"
_TMP = ".tmp-"
# Fault-injection hook for tests: seconds to sleep between writing the TF and
# Python state of a checkpoint (so a test can kill the process mid-write).
_DELAY_ENV = "TRPO_TF_CHECKPOINT_WRITE_DELAY"


class CheckpointSchedule:
    """When training writes a periodic checkpoint (``checkpoint.every`` / ``every_s``).

    After iteration k a checkpoint is due when k is a multiple of ``every``, or when
    ``every_s`` seconds of training have passed since the previous one (or since this
    process started training); 0 turns either trigger off.

    Args:
        config: the experiment's ``checkpoint:`` section.
        elapsed: seconds of training so far (where a resumed run starts counting).
    """

    def __init__(self, config: CheckpointConfig, elapsed: float) -> None:
        self.every = config.every
        self.every_s = config.every_s
        self.last = elapsed

    def due(self, iteration: int, elapsed: float) -> bool:
        """Whether a checkpoint is due after ``iteration`` at ``elapsed`` seconds."""
        by_iterations = self.every > 0 and iteration % self.every == 0
        return by_iterations or (self.every_s > 0 and elapsed - self.last >= self.every_s)

    def written(self, elapsed: float) -> None:
        """A checkpoint was written at ``elapsed`` seconds; the clock restarts there."""
        self.last = elapsed


class CheckpointManager:
    """Writes ``iter_NNNNNN`` checkpoints atomically and keeps the newest ``keep``."""

    def __init__(self, directory: Path, keep: int) -> None:
        self.directory = Path(directory)
        self.keep = max(1, keep)
        # One writer per set of objects: later writes reuse its object graph and its
        # compiled save function (trpo_tf/checkpoint_write.py).
        self._writer: tuple[tuple[tuple[str, int], ...], CheckpointWriter] | None = None

    def _writer_of(self, tf_objects: dict[str, Any]) -> CheckpointWriter:
        """The writer of ``tf_objects`` (the same one while the objects are the same)."""
        import tensorflow as tf

        from trpo_tf.checkpoint_write import CheckpointWriter

        key = tuple(sorted((name, id(obj)) for name, obj in tf_objects.items()))
        if self._writer is None or self._writer[0] != key:
            self._writer = (key, CheckpointWriter(tf.train.Checkpoint(**tf_objects)))
        return self._writer[1]

    def all(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.iterdir() if p.is_dir() and p.name.startswith(_PREFIX)
        )

    def latest(self) -> Path | None:
        found = self.all()
        return found[-1] if found else None

    def path_of(self, iteration: int) -> Path:
        """Where the checkpoint of ``iteration`` lands once complete."""
        return self.directory / f"{_PREFIX}{iteration:06d}"

    @staticmethod
    def iteration_of(path: Path) -> int:
        """The iteration a checkpoint directory holds the state after (``iter_000030``: 30)."""
        return int(Path(path).name[len(_PREFIX) :])

    @staticmethod
    def snapshot(state: dict[str, Any]) -> bytes:
        """The Python state, pickled now (so later changes do not leak into it)."""
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def save(
        self, iteration: int, tf_objects: dict[str, Any], state: dict[str, Any] | bytes
    ) -> Path:
        """Write one checkpoint (``state`` as a dict or a :meth:`snapshot`); its final path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(f"{_TMP}*"):
            shutil.rmtree(stale, ignore_errors=True)
        final = self.path_of(iteration)
        tmp = self.directory / f"{_TMP}{final.name}"
        tmp.mkdir()
        self._writer_of(tf_objects).write(str(tmp / "tf"))
        delay = float(os.environ.get(_DELAY_ENV, "0") or 0)
        if delay:
            time.sleep(delay)
        with open(tmp / "state.pkl", "wb") as handle:
            handle.write(state if isinstance(state, bytes) else self.snapshot(state))
            handle.flush()
            os.fsync(handle.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in self.all()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    @staticmethod
    def load(
        path: Path, tf_objects: dict[str, Any], restore: Callable[[dict[str, Any]], None]
    ) -> None:
        """Restore TF objects in place and pass the Python state to ``restore``.

        Raises:
            RunDirError: the checkpoint lacks variables this run has (written for
                another network shape, distribution or optimizer).
        """
        import tensorflow as tf

        status = tf.train.Checkpoint(**tf_objects).read(str(path / "tf"))
        try:
            status.assert_existing_objects_matched()
        except AssertionError as error:
            detail = str(error).strip().splitlines()[0][:300]
            raise RunDirError(
                f"checkpoint {path} does not fit this run's model or optimizer (written by "
                f"another configuration or trpo_tf version?); start a new run instead: {detail}"
            ) from None
        with open(path / "state.pkl", "rb") as handle:
            restore(pickle.load(handle))
