"""``eval.keep_best``: the policy of the best periodic evaluation, kept beside the final one.

::

    RUN_DIR/best/
      best.json     {"iteration", "env_steps", "eval_return", "eval_return_std"}
      policy/       its weights and normalizer statistics (as RUN_DIR/policy/)
      export/       its SavedModel (metadata "policy": "best"), made when the run ends

The deterministic evaluation return decides; on a tie the later policy wins, so a
run whose final evaluation equals the best keeps the final policy as the best one.
The final policy stays in ``RUN_DIR/policy`` and ``RUN_DIR/export``; benchmark
tables report it, not this one. Every write is atomic.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trpo_tf import atomic

BEST_DIR = "best"
RECORD_FILE = "best.json"


@dataclass(frozen=True)
class BestRecord:
    """Which evaluation the kept policy had."""

    iteration: int
    env_steps: int
    eval_return: float
    eval_return_std: float


def read_record(run_dir: str | Path) -> BestRecord | None:
    """The best policy's record in ``run_dir`` (None when there is none)."""
    try:
        record = json.loads((Path(run_dir) / BEST_DIR / RECORD_FILE).read_text())
        return BestRecord(**record)
    except (OSError, ValueError, TypeError):
        return None


def best_summary(record: BestRecord | None) -> dict[str, Any]:
    """``best_*`` keys of ``summary.json`` (the kept policy; tables report the final one)."""
    if record is None:
        return {}
    return {
        "best_eval_return": record.eval_return,
        "best_eval_return_std": record.eval_return_std,
        "best_iteration": record.iteration,
        "best_env_steps": record.env_steps,
    }


class BestPolicy:
    """Keeps ``RUN_DIR/best`` up to date as evaluations come in.

    Args:
        run_dir: the run directory.
        enabled: ``eval.keep_best``.
    """

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.directory = Path(run_dir) / BEST_DIR
        self.enabled = enabled

    def consider(self, agent: Any, record: BestRecord, best_so_far: float) -> bool:
        """Save ``agent``'s policy when ``record`` is at least as good as ``best_so_far``.

        Returns:
            Whether it was saved (the caller then holds ``record.eval_return`` as the best).
        """
        if not self.enabled or not record.eval_return >= best_so_far:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic.build_dir(self.directory / "policy", agent.save, "best policy")
        text = json.dumps(record.__dict__, indent=2) + "\n"
        atomic.write_text(self.directory / RECORD_FILE, text, "best policy record")
        return True

    def export(
        self,
        agent: Any,
        final_iteration: int,
        final_policy: Path,
        final_export: Path,
        export: Any,
    ) -> None:
        """Write ``best/export`` once training has ended.

        When the best policy is the final one, its export is a copy of the final
        export. Otherwise the best weights are loaded into ``agent``, exported with
        ``export(agent, out_dir)``, and the final weights loaded back from
        ``final_policy``.
        """
        record = read_record(self.directory.parent)
        if not self.enabled or record is None:
            return
        out = self.directory / "export"
        if record.iteration == final_iteration and final_export.is_dir():
            atomic.build_dir(
                out,
                lambda tmp: shutil.copytree(final_export, tmp, dirs_exist_ok=True),
                "best export",
            )
            return
        agent.restore(self.directory / "policy")
        try:
            export(agent, out)
        finally:
            agent.restore(final_policy)
