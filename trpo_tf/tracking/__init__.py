"""Local run directory, progress display and optional experiment trackers."""

from trpo_tf.tracking.factory import build_trackers
from trpo_tf.tracking.progress import Progress
from trpo_tf.tracking.run_dir import METRIC_COLUMNS, RunDirectory

__all__ = ["METRIC_COLUMNS", "Progress", "RunDirectory", "build_trackers"]
