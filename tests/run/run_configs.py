"""Tiny CartPole experiments for the run-integrity tests."""

from __future__ import annotations

from trpo_tf.config import experiment_from_dict


def tiny_config(total_steps: int = 2048, **sections):
    spec = {
        "env": {"id": "CartPole-v1", "n_envs": 2},
        "trainer": {"steps_per_iteration": 256, "total_steps": total_steps},
        "value": {"epochs": 1},
        "eval": {"every": 100, "episodes": 1},
        "checkpoint": {"every": 0, "every_s": 3600, "keep": 3},
        "tracking": {"tensorboard": False},
    }
    for section, values in sections.items():
        spec.setdefault(section, {}).update(values)
    return experiment_from_dict(spec)
