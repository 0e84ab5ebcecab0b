"""Conformance kit: check a plug-in against its contract in your own tests.

Each check builds the plug-in through its factory exactly as ``trpo_tf`` does
(see :mod:`trpo_tf.interfaces`), exercises it the way the trainer, the rollout
and the exporter will, and raises :class:`AssertionError` with a message that
names the check and what was wrong::

    from trpo_tf.testing import check_distribution
    from my_package import make_my_head

    def test_my_head_conforms():
        check_distribution(make_my_head, gymnasium.spaces.Box(-1.0, 1.0, (2,)))

* :func:`check_distribution` — ``trpo_tf.distributions`` factories
* :func:`check_advantage_estimator` — ``trpo_tf.advantages`` factories
* :func:`check_env_factory` — ``trpo_tf.envs`` factories
* :func:`check_tracker` — ``trpo_tf.trackers`` factories
* :func:`check_network` — ``trpo_tf.networks`` factories
* :func:`random_advantage_inputs` — a random rollout with episode ends, for
  estimator tests

Importing this package is cheap; TensorFlow is imported on first use of
:func:`check_distribution` or :func:`check_network`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "check_distribution": "trpo_tf.testing.distribution",
    "check_advantage_estimator": "trpo_tf.testing.advantage",
    "random_advantage_inputs": "trpo_tf.testing.advantage",
    "check_env_factory": "trpo_tf.testing.env",
    "check_tracker": "trpo_tf.testing.tracker",
    "check_network": "trpo_tf.testing.network",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trpo_tf.testing' has no attribute {name!r}")
