"""Built-in policy distributions and ``auto`` selection from the action space."""

from trpo_tf.distributions.auto import auto_distribution_name
from trpo_tf.distributions.categorical import CategoricalHead, make_categorical
from trpo_tf.distributions.diag_gaussian import DiagGaussianHead, make_diag_gaussian

__all__ = [
    "CategoricalHead",
    "DiagGaussianHead",
    "auto_distribution_name",
    "make_categorical",
    "make_diag_gaussian",
]
