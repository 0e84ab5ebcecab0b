"""Atomic, verified, rotating checkpoints of everything a run needs to continue exactly.

Layout::

    RUN_DIR/checkpoints/
      iter_000010/        one complete checkpoint (renamed into place when done)
        tf.*              policy, value network, Adam state, TF random generators
        state.json        counters, numpy RNG, normalizers, sampler state (JSON) ...
        arrays.npz        ... and its arrays (read with allow_pickle=False)
        experiment.yaml   the resolved experiment the checkpoint was trained with
        manifest.json     every file's size and SHA-256, the experiment's hash,
                          the iteration and the run's id; written last
      iter_000020/
      .tmp-iter_000030.*  a checkpoint being written (ignored; removed on next save)

A checkpoint directory is written under a temporary name and renamed only once
complete, so a process killed mid-write (even by SIGKILL) leaves the previous
checkpoint intact and loadable. Before a checkpoint is used, its manifest is
checked against the files (:func:`verify`); a damaged or foreign one is skipped
for the newest intact one (:meth:`CheckpointManager.newest_intact`). Nothing in a
checkpoint is unpickled unless this user's key signed it
(:mod:`trpo_tf.checkpoint_state`).

Listing and verifying checkpoints needs no TensorFlow (the CLI checks a run before
loading it); TensorFlow is imported by the methods that read or write one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trpo_tf import atomic, checkpoint_state
from trpo_tf.errors import RunDirError

if TYPE_CHECKING:
    from trpo_tf.checkpoint_write import CheckpointWriter
    from trpo_tf.config.schema import CheckpointConfig

_PREFIX = "iter_"
_TMP = ".tmp-"
MANIFEST_FILE = "manifest.json"
EXPERIMENT_FILE = "experiment.yaml"
FORMAT = 2
# Fault-injection hook for tests: seconds to sleep between writing the TF and
# Python state of a checkpoint (so a test can kill the process mid-write).
_DELAY_ENV = "TRPO_TF_CHECKPOINT_WRITE_DELAY"


@dataclass(frozen=True)
class Snapshot:
    """What a checkpoint holds outside TensorFlow, taken at one moment.

    Attributes:
        state_json: the Python state as JSON (:func:`checkpoint_state.encode`).
        arrays: its arrays, copied when the snapshot was taken.
        experiment_yaml: the resolved experiment, as ``config.yaml`` holds it.
        run_id: the run the checkpoint belongs to ("" when unknown).
    """

    state_json: str
    arrays: dict[str, Any]
    experiment_yaml: str
    run_id: str = ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(directory: Path, iteration: int, run_id: str) -> None:
    files = {
        path.name: {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(directory.iterdir())
        if path.is_file()
    }
    manifest = {
        "format": FORMAT,
        "iteration": iteration,
        "run_id": run_id,
        "experiment_sha256": files[EXPERIMENT_FILE]["sha256"],
        "files": files,
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def verify(path: Path, run_id: str = "") -> str | None:
    """Why the checkpoint at ``path`` cannot be used (None: it is intact and this run's).

    Checks the name, the manifest, every listed file's size and SHA-256, and (when
    ``run_id`` is given) that the checkpoint belongs to that run.
    """
    path = Path(path)
    try:
        iteration = CheckpointManager.iteration_of(path)
    except ValueError:
        return "not a checkpoint name (iter_NNNNNN)"
    if not (path / MANIFEST_FILE).is_file():
        if (path / "state.pkl").exists():
            return "an older pickled checkpoint, which is never loaded (it could run code)"
        return "no manifest.json (incomplete or damaged)"
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
        files = manifest["files"]
        if manifest["iteration"] != iteration:
            return f"its manifest is for iteration {manifest['iteration']}"
        for required in ("tf.index", checkpoint_state.STATE_FILE, EXPERIMENT_FILE):
            if required not in files:
                return f"its manifest lacks {required}"
        for name, entry in files.items():
            file = path / name
            if not file.is_file():
                return f"{name} is missing"
            if file.stat().st_size != entry["size"]:
                return f"{name} has {file.stat().st_size} bytes, not {entry['size']}"
            if _sha256(file) != entry["sha256"]:
                return f"{name} does not match its checksum"
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"unreadable manifest ({type(error).__name__}: {error})"
    if run_id and manifest.get("run_id") and manifest["run_id"] != run_id:
        return f"it belongs to another run ({manifest['run_id']}, this run is {run_id})"
    return None


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

    def candidates(self) -> list[Path]:
        """Every directory named like a checkpoint (``iter_*``), by name."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.iterdir() if p.is_dir() and p.name.startswith(_PREFIX)
        )

    def all(self) -> list[Path]:
        """Checkpoints with a well-formed name, oldest first (not verified)."""
        found = []
        for path in self.candidates():
            try:
                found.append((self.iteration_of(path), path))
            except ValueError:
                continue
        return [path for _, path in sorted(found)]

    def latest(self) -> Path | None:
        found = self.all()
        return found[-1] if found else None

    def newest_intact(self, run_id: str = "") -> tuple[Path | None, list[str]]:
        """The newest checkpoint that :func:`verify` accepts, and why newer ones were skipped.

        Returns:
            ``(path or None, notes)``: one note per skipped directory, newest first,
            ``"iter_000030: <reason>"``.
        """
        notes = []
        named = self.all()
        for path in sorted(set(self.candidates()) - set(named)):
            notes.append(f"{path.name}: {verify(path, run_id)}")
        for path in reversed(named):
            reason = verify(path, run_id)
            if reason is None:
                return path, notes
            notes.append(f"{path.name}: {reason}")
        return None, notes

    def path_of(self, iteration: int) -> Path:
        """Where the checkpoint of ``iteration`` lands once complete."""
        return self.directory / f"{_PREFIX}{iteration:06d}"

    @staticmethod
    def iteration_of(path: Path) -> int:
        """The iteration a checkpoint directory holds the state after (``iter_000030``: 30).

        Raises:
            ValueError: the name is not ``iter_`` and six or more digits.
        """
        digits = Path(path).name[len(_PREFIX) :]
        if not Path(path).name.startswith(_PREFIX) or not digits.isdigit():
            raise ValueError(f"not a checkpoint directory name: {Path(path).name}")
        return int(digits)

    @staticmethod
    def snapshot(state: dict[str, Any], experiment_yaml: str = "", run_id: str = "") -> Snapshot:
        """The Python state, encoded now (so later changes do not leak into it)."""
        text, arrays = checkpoint_state.encode(state)
        return Snapshot(text, arrays, experiment_yaml, run_id)

    def save(
        self, iteration: int, tf_objects: dict[str, Any], state: dict[str, Any] | Snapshot
    ) -> Path:
        """Write one checkpoint (``state`` as a dict or a :meth:`snapshot`); its final path.

        Raises:
            StorageError: the filesystem refused a write; earlier checkpoints are intact.
        """
        snapshot = state if isinstance(state, Snapshot) else self.snapshot(state)
        final = self.path_of(iteration)
        with atomic.translated_errors(final, "checkpoint"):
            self.directory.mkdir(parents=True, exist_ok=True)
            for stale in self.directory.glob(f"{_TMP}*"):
                shutil.rmtree(stale, ignore_errors=True)
            atomic.inject_faults(final.name)
            tmp = atomic.temporary_dir(final)
            try:
                self._writer_of(tf_objects).write(str(tmp / "tf"))
                delay = float(os.environ.get(_DELAY_ENV, "0") or 0)
                if delay:
                    time.sleep(delay)
                checkpoint_state.write(tmp, snapshot.state_json, snapshot.arrays)
                (tmp / EXPERIMENT_FILE).write_text(snapshot.experiment_yaml)
                _write_manifest(tmp, iteration, snapshot.run_id)
                atomic.replace_dir(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        for old in self.all()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    @staticmethod
    def load(
        path: Path, tf_objects: dict[str, Any], restore: Callable[[dict[str, Any]], None]
    ) -> list[str]:
        """Restore TF objects in place and pass the Python state to ``restore``.

        Returns:
            Notes on state that was not restored (unsigned pickled env state).

        Raises:
            RunDirError: the checkpoint lacks variables this run has (written for
                another network shape, distribution or optimizer), or cannot be read.
        """
        import tensorflow as tf

        try:
            status = tf.train.Checkpoint(**tf_objects).read(str(path / "tf"))
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            detail = str(error).strip().splitlines()[0][:300]
            raise RunDirError(
                f"checkpoint {path} does not fit this run's model or optimizer (written by "
                f"another configuration or trpo_tf version?); start a new run instead: {detail}"
            ) from None
        state, notes = checkpoint_state.read(path)
        restore(state)
        return notes


def experiment_of(path: Path) -> str:
    """The resolved experiment (YAML text) stored in the checkpoint at ``path``."""
    return (Path(path) / EXPERIMENT_FILE).read_text()
