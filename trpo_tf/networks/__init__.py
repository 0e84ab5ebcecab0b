"""Keras networks: MLPs that output tensors, never distributions."""

from trpo_tf.networks.mlp import DenseWithFeatures, build_mlp

__all__ = ["DenseWithFeatures", "build_mlp"]
