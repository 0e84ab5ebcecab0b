"""The trust region's radius over training: δ as a function of progress.

    p    = min(1, env steps collected up to this update / trainer.total_steps)
    δ(p) = δ₀ + (δ₁ − δ₀) · p          δ₀ = trainer.max_kl, δ₁ = trainer.max_kl_final

With no ``max_kl_final`` δ stays δ₀ (TRPO's constant bound). A shrinking δ lets late
updates, whose advantages are mostly noise once the policy is good, move it less; it
is a pure function of the iteration, so a resumed run continues the same schedule.
"""

from __future__ import annotations


def training_progress(iteration: int, steps_per_update: int, total_steps: int) -> float:
    """p ∈ [0, 1]: the env steps of iterations 1..``iteration`` (1-based) over the budget."""
    if total_steps <= 0:
        return 1.0
    return min(1.0, max(0.0, iteration * steps_per_update / total_steps))


def scheduled_max_kl(max_kl: float, max_kl_final: float | None, progress: float) -> float:
    """δ(p) = δ₀ + (δ₁ − δ₀)·p, or δ₀ when ``max_kl_final`` is None; p clipped to [0, 1]."""
    if max_kl_final is None:
        return float(max_kl)
    progress = min(1.0, max(0.0, float(progress)))
    return float(max_kl + (max_kl_final - max_kl) * progress)
