"""Checks on user-chosen output paths, before anything is written.

An output the user names (``--out``, ``--video DIR``) must not collide with a
file that is already there, and must never replace another run's data silently.
These checks turn each collision into a one-line :class:`OutputPathError`; they
import nothing heavy, so the CLI can run them before TensorFlow loads.
"""

from __future__ import annotations

from pathlib import Path

from trpo_tf.errors import OutputPathError

RUN_MARKERS = ("config.yaml", "metrics.csv")
"""Files that make a directory a run directory (see :mod:`trpo_tf.tracking.run_dir`)."""


def is_run_dir(path: str | Path) -> bool:
    """True when ``path`` is a run directory (it holds ``config.yaml`` or ``metrics.csv``)."""
    return any((Path(path) / marker).is_file() for marker in RUN_MARKERS)


def _check_parents(path: Path, option: str) -> None:
    """The nearest existing ancestor of ``path`` must be a directory."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(
                    f"{option} {path}: {parent} is a file, not a directory; "
                    "choose a path under a directory"
                )
            return


def check_output_dir(path: str | Path, option: str) -> Path:
    """``path`` is usable as an output directory (missing, or an existing directory).

    Args:
        path: the directory the command will create or write into.
        option: the option that named it, for the message (e.g. ``"--video"``).

    Raises:
        OutputPathError: ``path`` or one of its ancestors is an existing file.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(
            f"{option} {path} is an existing file; it must name a directory "
            "(a new one, or an existing directory)"
        )
    _check_parents(path, option)
    return path


def check_output_file(path: str | Path, option: str, suffixes: tuple[str, ...] = ()) -> Path:
    """``path`` is usable as an output file: not a directory, under a directory.

    Args:
        path: the file the command will write (an existing file is replaced).
        option: the option that named it, for the message (e.g. ``"--out"``).
        suffixes: the allowed lowercase extensions with their dot (empty: any).

    Raises:
        OutputPathError: ``path`` is a directory, lies under a file, or has an
            extension not in ``suffixes``.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{option} {path} is a directory; name a file inside it instead")
    if suffixes and path.suffix.lower() not in suffixes:
        got = f"extension '{path.suffix}'" if path.suffix else "no extension"
        raise OutputPathError(
            f"{option} {path} has {got}; use one of {', '.join(suffixes)} "
            f"(e.g. {path.with_suffix(suffixes[0]).name})"
        )
    _check_parents(path, option)
    return path


def check_export_dir(out: str | Path, default: str | Path, force: bool) -> Path:
    """``out`` may receive a SavedModel export of the run whose default export is ``default``.

    Writing into the run's own default export directory (re-exporting) is always
    allowed. Any other existing, non-empty directory (another run's export, say)
    is only overwritten with ``force``; a run directory, or a run's ``policy/`` or
    ``checkpoints/``, never is.

    Raises:
        OutputPathError: as above, or ``out`` is a file or lies under one.
    """
    out = check_output_dir(out, "--out")
    if out.resolve() == Path(default).resolve():
        return out
    if is_run_dir(out):
        raise OutputPathError(
            f"--out {out} is a run directory; an export would mix its files into the run. "
            "choose a new directory, or omit --out to write RUN_DIR/export"
        )
    if out.name in ("policy", "checkpoints") and is_run_dir(out.parent):
        raise OutputPathError(
            f"--out {out} is part of the run directory {out.parent}; choose a new directory"
        )
    if out.is_dir() and any(out.iterdir()) and not force:
        what = "an export" if (out / "saved_model.pb").is_file() else "files"
        raise OutputPathError(
            f"--out {out} already holds {what}; choose a new or empty directory, "
            "or pass --force to overwrite it"
        )
    return out
