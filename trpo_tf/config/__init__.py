"""Experiment configuration: the schema dataclasses and the YAML loader.

Typical use::

    from trpo_tf.config import load_experiment

    config = load_experiment("experiments/cartpole.yaml", ["trainer.max_kl=0.02"])
"""

from trpo_tf.config.loader import (
    dump_experiment,
    experiment_from_dict,
    load_experiment,
    parse_overrides,
    to_dict,
)
from trpo_tf.config.schema import ExperimentConfig

__all__ = [
    "ExperimentConfig",
    "dump_experiment",
    "experiment_from_dict",
    "load_experiment",
    "parse_overrides",
    "to_dict",
]
