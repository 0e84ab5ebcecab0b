"""Failure isolation for trackers: a broken sink warns once and goes quiet.

A tracker must never end a training run. Every call into a third-party sink
(W&B, TensorBoard, matplotlib) goes through :class:`QuietOnFailure`, which turns
the first exception into one :class:`TrackingWarning` and drops all later calls.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from trpo_tf.errors import TrpoTfWarning

_MAX_REASON_CHARS = 300


class TrackingWarning(TrpoTfWarning):
    """A tracker failed and was switched off; the run directory is still written."""


def describe_error(error: BaseException) -> str:
    """``Type: first line of the message``, shortened to one readable line."""
    text = str(error).strip().splitlines()
    message = text[0].strip() if text else ""
    reason = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if len(reason) > _MAX_REASON_CHARS:
        reason = reason[: _MAX_REASON_CHARS - 3] + "..."
    return reason


def warn_disabled(sink: str, reason: str) -> None:
    """Emit the one warning line for a tracker that has been switched off."""
    warnings.warn(
        f"trpo-tf: warning: {sink} disabled: {reason}; training continues with local tracking",
        TrackingWarning,
        stacklevel=3,
    )


class QuietOnFailure:
    """Runs calls into a sink until the first failure, then warns once and stops."""

    def __init__(self, sink: str) -> None:
        self.sink = sink
        self.failed = False

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, or ``None`` once the sink has failed."""
        if self.failed:
            return None
        try:
            return function(*args, **kwargs)
        except Exception as error:  # any sink failure must not end training
            self.fail(describe_error(error))
            return None

    def fail(self, reason: str) -> None:
        """Switch the sink off with one warning (later failures are silent)."""
        if not self.failed:
            self.failed = True
            warn_disabled(self.sink, reason)


class IsolatedTracker:
    """A plug-in tracker whose first failure warns once and switches it off."""

    def __init__(self, name: str, tracker: Any) -> None:
        self.name = name
        self.tracker = tracker
        self._guard = QuietOnFailure(f"tracker '{name}'")

    def log(self, row: Any, step: int) -> None:
        self._guard.call(self.tracker.log, row, step)

    def finish(self, summary: Any, run_dir: Any) -> None:
        self._guard.call(self.tracker.finish, summary, run_dir)
