"""trpo_tf: Trust Region Policy Optimization for TensorFlow/Keras.

Importing this package loads no plug-ins and does not import TensorFlow; the
public API below is imported lazily on first attribute access.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_EXPORTS = {
    "ExperimentConfig": "trpo_tf.config",
    "load_experiment": "trpo_tf.config",
    "train": "trpo_tf.train",
    "load_policy": "trpo_tf.export",
    "TrpoTfError": "trpo_tf.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trpo_tf' has no attribute {name!r}")
