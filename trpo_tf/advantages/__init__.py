"""Built-in advantage estimators (``gae``, ``mc``)."""

from trpo_tf.advantages.gae import GeneralizedAdvantageEstimator, make_gae
from trpo_tf.advantages.mc import MonteCarloEstimator, make_mc

__all__ = ["GeneralizedAdvantageEstimator", "MonteCarloEstimator", "make_gae", "make_mc"]
