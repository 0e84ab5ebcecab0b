"""Notice a run whose policy has stopped moving: every recent step was rejected."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STALL_ITERATIONS = 10
"""Consecutive iterations without an accepted step before the run says so (once)."""


class StallWatch:
    """Counts consecutive iterations whose line search kept θ_old; speaks once.

    A TRPO step is kept only when the mean KL stays within ``trainer.max_kl`` and the
    surrogate improves. When no step is kept for :data:`STALL_ITERATIONS` iterations in
    a row, the policy is not learning, and the metrics alone (``kl`` 0,
    ``line_search_accepted`` 0) are easy to miss.
    """

    def __init__(self, iterations: int = STALL_ITERATIONS) -> None:
        self.iterations = iterations
        self.streak = 0
        self.spoken = False

    def observe(self, row: Mapping[str, Any]) -> str | None:
        """The one-time message after ``iterations`` rejected steps in a row, else None.

        Args:
            row: an iteration's metrics (``line_search_accepted``, ``skip_reason``).
        """
        self.streak = 0 if row.get("line_search_accepted") else self.streak + 1
        if self.spoken or self.streak < self.iterations:
            return None
        self.spoken = True
        if row.get("skip_reason") == "no held-out improvement":
            cause = (
                "trainer.held_out_check found no improvement the step could follow: "
                "the advantages carry no signal that both halves of the batch agree on"
            )
        elif row.get("skip_reason"):
            cause = (
                f"the update was skipped ({row['skip_reason']}; metrics.csv skip_reason); "
                "check the advantages and the distribution's KL"
            )
        else:
            cause = (
                "the line search rejected every step; likely causes: trainer.max_kl too small, "
                "or a distribution whose KL has a zero Hessian in some parameter "
                "(trpo_tf.testing.check_distribution checks it)"
            )
        return f"warning: θ has not changed for {self.streak} iterations in a row: {cause}"
