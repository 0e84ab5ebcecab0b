"""Built-in policy distributions and ``auto`` selection from the action space."""

from trpo_tf.distributions.auto import auto_distribution_name
from trpo_tf.distributions.bernoulli import BernoulliHead, make_bernoulli
from trpo_tf.distributions.beta import BetaHead, make_beta
from trpo_tf.distributions.categorical import CategoricalHead, make_categorical
from trpo_tf.distributions.diag_gaussian import (
    DiagGaussianHead,
    StateStdGaussianHead,
    make_diag_gaussian,
    make_state_std_gaussian,
)
from trpo_tf.distributions.gsde import GsdeHead, make_gsde
from trpo_tf.distributions.multi_categorical import (
    MultiCategoricalHead,
    make_multi_categorical,
)

__all__ = [
    "BernoulliHead",
    "BetaHead",
    "CategoricalHead",
    "DiagGaussianHead",
    "GsdeHead",
    "MultiCategoricalHead",
    "StateStdGaussianHead",
    "auto_distribution_name",
    "make_bernoulli",
    "make_beta",
    "make_categorical",
    "make_diag_gaussian",
    "make_gsde",
    "make_multi_categorical",
    "make_state_std_gaussian",
]
