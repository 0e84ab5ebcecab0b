"""One writer per run directory: an advisory lock held for a whole train or export.

``RUN_DIR/.trpo-tf.lock`` is locked with ``fcntl.flock`` and holds the holder's
PID, host, command and start time as JSON. The kernel drops the lock when its
process dies (SIGKILL, OOM, power loss of a local disk), so a lock left by a dead
process is simply taken over; the file's text only names the holder in the error
another process gets. Where ``flock`` is not supported (some network
filesystems), the text decides: a lock naming a live PID on this host is held.
The holder removes the file when it releases the lock, so a finished run leaves
no lock file behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trpo_tf.errors import RunInUseError

LOCK_FILE = ".trpo-tf.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]


def _describe(holder: dict[str, Any]) -> str:
    since = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "unknown"
    return (
        f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"({holder.get('command', 'trpo-tf')}, since {when})"
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _alive_here(holder: dict[str, Any]) -> bool:
    """Whether the holder is a live process on this host (the no-flock fallback)."""
    if holder.get("host") != socket.gethostname():
        return bool(holder)  # another host: cannot tell, so it counts as held
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """The lock of one run directory, held by this process until :meth:`release`."""

    def __init__(self, run_dir: str | Path, command: str) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (the run directory is created if missing).

        Raises:
            RunInUseError: a live process holds it; the message names its PID and host.
        """
        from trpo_tf.atomic import translated_errors

        while True:
            with translated_errors(self.path, "lock"):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not _try_flock(fd):
                    raise RunInUseError(self._in_use_message(_read(self.path)))
                # The holder removes the file when it releases: the lock counts only if
                # the file locked is still the one at the path (else take the new one).
                if _same_file(fd, self.path):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": time.time(),
        }
        data = json.dumps(holder).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        self._fd = fd
        return self

    def _in_use_message(self, holder: dict[str, Any]) -> str:
        return (
            f"run directory {self.path.parent} is in use by {_describe(holder)}; wait for it "
            "to finish or stop it (kill -TERM writes a checkpoint), or use another directory"
        )

    def release(self) -> None:
        """Remove the lock file and drop the lock (a directory is left as it was found)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if _same_file(self._fd, self.path):
                    self.path.unlink()
            if fcntl is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _try_flock(fd: int) -> bool:
    """Lock ``fd`` without waiting; False when another process holds it."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # No flock here: the holder's text decides.
        holder = {}
        with contextlib.suppress(OSError, ValueError):
            holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return not (isinstance(holder, dict) and _alive_here(holder))
    return True


def holder_of(run_dir: str | Path) -> dict[str, Any] | None:
    """Who holds ``run_dir``'s lock now (None when free or no lock file); takes nothing."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if fcntl is None:  # pragma: no cover
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(path) or {"pid": "?", "host": "?"}
        except OSError:
            holder = _read(path)
            return holder if _alive_here(holder) else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_not_in_use(run_dir: str | Path) -> None:
    """Raise :class:`RunInUseError` when a live process holds ``run_dir`` (a cheap pre-check)."""
    holder = holder_of(run_dir)
    if holder is not None:
        raise RunInUseError(RunLock(run_dir, "")._in_use_message(holder))


@contextlib.contextmanager
def locked(run_dir: str | Path, command: str, writes_there: bool = True) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block.

    Args:
        writes_there: the command writes into ``run_dir``. When it only reads it (an
            export to another directory), a run directory that cannot hold a lock file
            (read-only, not ours) is read without one: nothing can write to it.

    Raises:
        RunInUseError: a live process holds it.
        StorageError: ``writes_there`` and the lock file cannot be created.
    """
    from trpo_tf.errors import StorageError

    lock = RunLock(run_dir, command)
    try:
        lock.acquire()
    except StorageError:
        if writes_there or os.access(run_dir, os.W_OK):
            raise
        check_not_in_use(run_dir)
        yield
        return
    try:
        yield
    finally:
        lock.release()
