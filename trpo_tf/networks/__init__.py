"""Keras networks: MLPs that output tensors, never distributions."""

from trpo_tf.networks.mlp import build_mlp

__all__ = ["build_mlp"]
