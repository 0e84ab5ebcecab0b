"""The constants of a TRPO update, checked when they are made."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

from trpo_tf.errors import ConfigError

FVP_METHODS = ("gauss_newton", "hessian")


@dataclass(frozen=True)
class TrpoHyperparameters:
    """Constants of the update (captured at trace time).

    Attributes:
        max_kl: δ > 0, the trust-region radius on mean KL(π_old‖π_θ).
        cg_iters: conjugate-gradient iterations, ≥ 1.
        cg_damping: λ ≥ 0 added to the Fisher diagonal.
        line_search_steps: candidates tried by the backtracking line search, ≥ 1.
        line_search_backtrack: step shrink factor per candidate, in (0, 1).
        fvp_subsample: fraction of the batch used for Fisher-vector products, a
            fresh uniformly random subset each update, in (0, 1] (1 = the whole batch).
        value_epochs: Adam epochs of the value fit, ≥ 0.
        value_minibatch_size: samples per Adam step, ≥ 1.
        grad_norm_eps: ‖g‖ at or below this (≥ 0) skips the policy step.
        fvp_method: ``gauss_newton`` (Jᵀ H_p J v: forward + reverse pass) or
            ``hessian`` (double back-propagation of the mean KL); equal at θ_old.
        entropy_coef: c ≥ 0, the weight of the mean policy entropy added to the
            surrogate (0: the plain TRPO surrogate, and the same computation).
        held_out_check: skip a step whose direction, fitted on one half of the batch,
            does not improve J on the other (``trainer/held_out.py``; off: TRPO's step).

    Raises:
        ConfigError: a field outside its range, in one line naming the field and the
            range (the experiment config checks its own keys before they get here).
    """

    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 0.1
    line_search_steps: int = 10
    line_search_backtrack: float = 0.8
    fvp_subsample: float = 1.0
    value_epochs: int = 10
    value_minibatch_size: int = 64
    grad_norm_eps: float = 1e-8
    fvp_method: str = "gauss_newton"
    entropy_coef: float = 0.0
    held_out_check: bool = False

    def __post_init__(self) -> None:
        for name, (kind, within, allowed) in _RANGES.items():
            value = getattr(self, name)
            number = numbers.Integral if kind is int else numbers.Real
            valid = (
                isinstance(value, number)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and within(value)
            )
            if not valid:
                noun = "an int" if kind is int else "a finite number"
                raise ConfigError(
                    f"TrpoHyperparameters.{name} must be {noun} {allowed}, got {value!r}"
                )
        if self.fvp_method not in FVP_METHODS:
            raise ConfigError(
                f"TrpoHyperparameters.fvp_method must be one of {', '.join(FVP_METHODS)}, "
                f"got {self.fvp_method!r}"
            )


_RANGES: dict[str, tuple[type, Callable[[float], bool], str]] = {
    "max_kl": (float, lambda v: v > 0, "> 0"),
    "cg_iters": (int, lambda v: v >= 1, ">= 1"),
    "cg_damping": (float, lambda v: v >= 0, ">= 0"),
    "line_search_steps": (int, lambda v: v >= 1, ">= 1"),
    "line_search_backtrack": (float, lambda v: 0 < v < 1, "in (0, 1)"),
    "fvp_subsample": (float, lambda v: 0 < v <= 1, "in (0, 1]"),
    "value_epochs": (int, lambda v: v >= 0, ">= 0"),
    "value_minibatch_size": (int, lambda v: v >= 1, ">= 1"),
    "grad_norm_eps": (float, lambda v: v >= 0, ">= 0"),
    "entropy_coef": (float, lambda v: v >= 0, ">= 0"),
}
