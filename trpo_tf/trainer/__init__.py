"""The TRPO update: flat parameters, FVP, CG, line search, value fit."""

from trpo_tf.trainer.cg import conjugate_gradient
from trpo_tf.trainer.compiled import TrpoUpdate
from trpo_tf.trainer.fvp import fisher_vector_product
from trpo_tf.trainer.hyperparameters import TrpoHyperparameters
from trpo_tf.trainer.line_search import LineSearchResult, backtracking_line_search

__all__ = [
    "LineSearchResult",
    "TrpoHyperparameters",
    "TrpoUpdate",
    "backtracking_line_search",
    "conjugate_gradient",
    "fisher_vector_product",
]
