"""V-trace advantages for data collected by a stale behavior policy β.

Espeholt et al. (2018), "IMPALA", with the λ of their section 4.2. Per step, from
``AdvantageInputs.log_rho = log π_old(a_t|s_t) − log β(a_t|s_t)``:

    ρ_t = min(ρ̄, exp(log_rho_t)),   c_t = min(c̄, exp(log_rho_t))
    δ_t = r_t + γ (1 − terminated_t) V(s_{t+1}) − V(s_t)
    D_t = ρ_t δ_t + γ λ c_t (1 − end_t) D_{t+1},   D_T = 0          (v_t = V(s_t) + D_t)
    Â_t = δ_t + γ λ (1 − end_t) D_{t+1}

Value targets are the V-trace targets v_t = V(s_t) + D_t. The advantage of the
*taken* action carries no ρ_t: the TRPO surrogate already weights every sample by
π_θ(a_t|s_t) / β(a_t|s_t), so only the later steps, which β chose, are corrected.

Precise reductions (tested):

* On-policy (``log_rho = 0``) with ρ̄ ≥ 1 and c̄ ≥ 1, every ρ_t = c_t = 1 and both
  outputs equal GAE(γ, λ) exactly: D_t is the GAE recursion and v_t the λ-return.
* With λ = 1, Â_t = r_t + γ v_{t+1} − V(s_t) inside an episode: IMPALA's policy-
  gradient advantage without its ρ_t factor; on-policy this is GAE(λ = 1), the
  Monte-Carlo return (bootstrapped at the rollout end) minus V(s_t).
* With ρ̄ = c̄ = ∞ the targets are per-decision importance sampling (unbiased, high
  variance); smaller c̄ cuts traces sooner, smaller ρ̄ biases v towards V of a policy
  between β and π_old (ρ̄ = 1, c̄ = 1 are the paper's defaults).

Episode ends (terminated or truncated) stop the recursion; a truncated step still
bootstraps through V(final observation) in δ_t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trpo_tf.errors import ConfigError
from trpo_tf.interfaces import AdvantageInputs, AdvantageOutputs

__all__ = ["VTraceEstimator", "make_vtrace"]


@dataclass(frozen=True)
class VTraceEstimator:
    """V-trace(γ, λ, ρ̄, c̄); arrays are ``[T, n_envs]``, computed in float64."""

    gamma: float = 0.99
    lam: float = 0.95
    rho_bar: float = 1.0
    c_bar: float = 1.0

    def __call__(self, inputs: AdvantageInputs) -> AdvantageOutputs:
        ratio = np.exp(np.asarray(inputs.log_rho, np.float64))
        rho = np.minimum(self.rho_bar, ratio)
        trace = np.minimum(self.c_bar, ratio)
        values = np.asarray(inputs.values, np.float64)
        deltas = (
            np.asarray(inputs.rewards, np.float64)
            + self.gamma * (1.0 - inputs.terminated) * inputs.next_values
            - values
        )
        continues = self.gamma * self.lam * (1.0 - np.asarray(inputs.episode_end, np.float64))
        advantages = np.zeros_like(deltas)
        corrections = np.zeros_like(deltas)
        next_correction = np.zeros(deltas.shape[1:], np.float64)
        for t in range(deltas.shape[0] - 1, -1, -1):
            advantages[t] = deltas[t] + continues[t] * next_correction
            next_correction = rho[t] * deltas[t] + continues[t] * trace[t] * next_correction
            corrections[t] = next_correction
        return AdvantageOutputs(
            advantages=advantages.astype(np.float32),
            value_targets=(values + corrections).astype(np.float32),
        )


def _truncation(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"advantage.kwargs.{name} must be a number, got {value!r}")
    if math.isnan(value) or value <= 0:
        raise ConfigError(f"advantage.kwargs.{name} must be > 0 (.inf for no truncation)")
    return float(value)


def make_vtrace(
    gamma: float = 0.99, lam: float = 0.95, rho_bar: float = 1.0, c_bar: float = 1.0
) -> VTraceEstimator:
    """Entry point ``vtrace``: ``advantage.kwargs`` takes ``rho_bar`` (ρ̄) and ``c_bar`` (c̄).

    Raises:
        ConfigError: ρ̄ or c̄ is not a positive number.
    """
    return VTraceEstimator(
        gamma=float(gamma),
        lam=float(lam),
        rho_bar=_truncation("rho_bar", rho_bar),
        c_bar=_truncation("c_bar", c_bar),
    )
