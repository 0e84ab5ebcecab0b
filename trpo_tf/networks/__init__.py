"""Keras networks (entry-point group ``trpo_tf.networks``): tensors out, never distributions.

* ``mlp`` (:func:`make_mlp`): fully connected layers, the default.
* ``cnn`` (:func:`make_cnn`): a convolution stack for image observations, then the
  fully connected layers.
"""

from trpo_tf.networks.cnn import make_cnn
from trpo_tf.networks.mlp import DenseWithFeatures, build_mlp, make_mlp

__all__ = ["DenseWithFeatures", "build_mlp", "make_cnn", "make_mlp"]
