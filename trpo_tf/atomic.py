"""Atomic writes: every file a run or an export writes appears whole or not at all.

A file is written to a temporary name in its own directory, flushed and fsynced,
renamed over its final name, and the directory is fsynced, so a process killed at
any point (even by SIGKILL) or a machine that loses power leaves either the old
file or the new one, never a torn or empty one. Directories (a checkpoint, an
export, ``policy/``) are built under a temporary name and swapped in the same way.

Filesystem errors (disk full, read-only filesystem, no permission, quota) become
one :class:`~trpo_tf.errors.StorageError` line naming the path and the operation.

Fault injection (tests only; both read from the environment at each write):

* ``TRPO_TF_FAULT_KILL=NAME``: SIGKILL this process after the temporary file of
  a write to a file or directory called ``NAME`` is complete, before its rename.
* ``TRPO_TF_FAULT_OSERROR=NAME:ERRNO``: raise ``OSError(ERRNO)`` (``ENOSPC``,
  ``EROFS``, ``EACCES``, ``EDQUOT``) on a write to ``NAME``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from trpo_tf.errors import StorageError

KILL_ENV = "TRPO_TF_FAULT_KILL"
# mkstemp makes 0600 files; a written file gets the mode open() would give it.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
OSERROR_ENV = "TRPO_TF_FAULT_OSERROR"

_HINTS = {
    errno.ENOSPC: "free space on that filesystem",
    errno.EDQUOT: "free space within your disk quota",
    errno.EROFS: "the filesystem is read-only; write to a writable directory instead",
    errno.EACCES: "you lack permission there; fix its permissions or use another directory",
    errno.EPERM: "you lack permission there; fix its permissions or use another directory",
}


# TensorFlow's file errors carry the OS message but no errno.
_MESSAGES = {os.strerror(code): code for code in _HINTS}


def storage_error(path: str | Path, operation: str, error: BaseException) -> StorageError:
    """One line for a failed write: the path, the operation, the cause and what to do."""
    code = getattr(error, "errno", None)
    if not isinstance(code, int):
        text = str(error)
        code = next((number for words, number in _MESSAGES.items() if words in text), None)
    cause = os.strerror(code) if isinstance(code, int) else str(error).splitlines()[0][:200]
    hint = _HINTS.get(code, "check the disk and the directory's permissions")
    return StorageError(f"cannot write {path} ({operation}): {cause}; {hint}")


@contextlib.contextmanager
def translated_errors(path: str | Path, operation: str) -> Iterator[None]:
    """Turn an ``OSError`` (or TensorFlow's I/O errors) inside into a :class:`StorageError`."""
    try:
        yield
    except StorageError:
        raise
    except OSError as error:
        raise storage_error(path, operation, error) from error
    except Exception as error:
        if type(error).__module__.startswith("tensorflow") and _is_io_error(error):
            raise storage_error(path, operation, error) from error
        raise


def _is_io_error(error: BaseException) -> bool:
    """TensorFlow's file errors (ResourceExhausted for ENOSPC, PermissionDenied, ...)."""
    names = {"ResourceExhaustedError", "PermissionDeniedError", "FailedPreconditionError"}
    return type(error).__name__ in names or any(words in str(error) for words in _MESSAGES)


def inject_faults(name: str) -> None:
    """The test hooks above, for a write to ``name`` (a file or directory's own name)."""
    spec = os.environ.get(OSERROR_ENV, "")
    if spec:
        target, _, code = spec.partition(":")
        if target == name:
            number = getattr(errno, code or "ENOSPC")
            raise OSError(number, os.strerror(number), name)


def _kill_point(name: str) -> None:
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(directory: str | Path) -> None:
    """Make a rename or a new entry in ``directory`` durable (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file(path: str | Path, fill: Callable[[Path], object], operation: str) -> Path:
    """Write ``path`` atomically; ``fill(tmp)`` writes the content to the temporary path.

    Args:
        path: the final file.
        fill: writes the whole content to the path it is given (a sibling of ``path``).
        operation: what the write is, for an error message (``"metrics"``).

    Raises:
        StorageError: the filesystem refused the write; ``path`` is as it was.
    """
    path = Path(path)
    with translated_errors(path, operation):
        inject_faults(path.name)
        handle, name = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
        os.fchmod(handle, _FILE_MODE)
        os.close(handle)
        tmp = Path(name)
        try:
            fill(tmp)
            with open(tmp, "rb+") as stream:
                os.fsync(stream.fileno())
            _kill_point(path.name)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)
    return path


def write_text(path: str | Path, text: str, operation: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), operation)


def write_bytes(path: str | Path, data: bytes, operation: str) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_file(path, lambda tmp: tmp.write_bytes(data), operation)


def temporary_dir(final: str | Path) -> Path:
    """A new empty directory beside ``final`` to build its replacement in."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}.", dir=final.parent))
    directory.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700 directories
    return directory


def sync_tree(directory: str | Path) -> None:
    """fsync every file under ``directory`` and the directories themselves."""
    for root, _, files in os.walk(directory):
        for file in files:
            with open(os.path.join(root, file), "rb") as stream:
                os.fsync(stream.fileno())
        fsync_dir(root)


def replace_dir(tmp: str | Path, final: str | Path) -> Path:
    """Swap the complete directory ``tmp`` in as ``final`` (replacing, never merging).

    An existing ``final`` is first renamed aside and removed after the swap, so a
    process killed in between leaves one whole version under ``final`` or beside it.
    """
    tmp, final = Path(tmp), Path(final)
    sync_tree(tmp)
    _kill_point(final.name)
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}.{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def build_dir(final: str | Path, fill: Callable[[Path], object], operation: str) -> Path:
    """Build a directory with ``fill(tmp)`` and swap it in as ``final`` atomically.

    Raises:
        StorageError: the filesystem refused a write; ``final`` is as it was.
    """
    final = Path(final)
    with translated_errors(final, operation):
        inject_faults(final.name)
        tmp = temporary_dir(final)
        try:
            fill(tmp)
            replace_dir(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
