"""TensorBoard event files in ``RUN_DIR/tensorboard``.

Each metrics row becomes one event holding every numeric column as a scalar
(``simple_value``) at ``step = env_steps``. The events are written as TFRecords
directly, so logging costs no TensorFlow ops (nothing runs on the accelerator)
and needs no ``tensorboard`` package; ``tensorboard --logdir RUN_DIR`` reads them.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trpo_tf.tracking.safe import QuietOnFailure

EVENTS_SUBDIR = "tensorboard"


def scalar_items(row: Mapping[str, Any]) -> list[tuple[str, float]]:
    """``(tag, value)`` for every numeric, finite cell of a metrics row."""
    items = []
    for key, value in row.items():
        if value is None or value == "" or isinstance(value, str):
            continue
        number = float(value)  # bools become 0/1
        if math.isfinite(number):
            items.append((key, number))
    return items


class TensorBoardTracker:
    """Writes every metrics row to an event file under ``run_dir/tensorboard``."""

    def __init__(self, run_dir: str | Path) -> None:
        self.log_dir = Path(run_dir) / EVENTS_SUBDIR
        self.guard = QuietOnFailure("TensorBoard")
        self._writer: Any = None
        self.guard.call(self._open)

    def _open(self) -> None:
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2
        from tensorflow.core.util import event_pb2

        self._event_pb2 = event_pb2
        self._summary_pb2 = summary_pb2
        self.log_dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        path = self.log_dir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}"
        self._writer = tf.io.TFRecordWriter(str(path))
        self._write(event_pb2.Event(wall_time=now, step=0, file_version="brain.Event:2"))

    def _write(self, event: Any) -> None:
        self._writer.write(event.SerializeToString())
        self._writer.flush()

    def _log(self, row: Mapping[str, Any], step: int) -> None:
        summary = self._summary_pb2.Summary(
            value=[
                self._summary_pb2.Summary.Value(tag=tag, simple_value=value)
                for tag, value in scalar_items(row)
            ]
        )
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def log(self, row: Mapping[str, Any], step: int) -> None:
        if self._writer is not None:
            self.guard.call(self._log, row, step)

    def finish(self, summary: Mapping[str, Any], run_dir: Any) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            self.guard.call(writer.close)
