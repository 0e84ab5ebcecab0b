"""The fresh-seed table: trpo_tf against sb3-contrib TRPO on the same seeds.

Reads the runs a fresh-seed campaign wrote into one folder (default
``benchmarks/results/fresh``):

* ``trpo_<env>_s<seed>/`` — a ``trpo-tf train`` run directory (``summary.json``:
  final deterministic evaluation, best periodic evaluation; ``metrics.csv``: the final
  stochastic evaluation when ``eval.stochastic`` was on);
* ``sb3_<env>_s<seed>/result.json`` — ``benchmarks/sb3_zoo.py --matched-eval``.

``<env>`` is the env id lower-cased with non-alphanumerics as ``_`` (``hopper_v5``); the
tables name each env by the id its runs trained on, with a budget short of 1M steps beside
it (``LunarLander-v3 (200k)``).
Per env it prints (markdown) for each side: the seeds, the final deterministic return
per seed, mean ± std, the interquartile mean with a percentile-bootstrap 95% CI over
seeds, the worst seed; for trpo_tf also the stochastic and best-periodic returns; and
the probability of improvement P(trpo_tf > sb3) over seed pairs (ties count ½; as in
rliable's ``probability_of_improvement``) with a bootstrap 95% CI, computed on the seeds
both sides finished. Then trpo_tf's mean and worst seed against the targets
(:data:`TARGETS`), with the shortfall where one is missed.

With ``--default FOLDER`` (a campaign of the shared default, ``fresh_runs.py
--experiment mujoco/default``) it also prints the default beside each task's own
experiment on the seeds both ran, and whether the default's mean is within
:data:`DEFAULT_TOLERANCE` of the task's (in ``--json``: the ``default_beside_own`` entry).

    python benchmarks/fresh_table.py --json fresh.json
    python benchmarks/fresh_table.py --folder benchmarks/results/fresh_suite \
        --default benchmarks/results/fresh_default_suite
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning import bootstrap_iqm_ci, interquartile_mean  # noqa: E402
from sb3_zoo import slug  # noqa: E402 - the folder names fresh_runs.py writes

from trpo_tf.tracking.compare import read_config  # noqa: E402 - a run's config.yaml

RUN_NAME = re.compile(r"^(trpo|sb3)_(.+)_s(\d+)$")
RESAMPLES = 10_000
FULL_BUDGET = 1_000_000  # env steps; a shorter budget is shown beside the env id ("(200k)")
DEFAULT_TOLERANCE = 0.15
"""The shared default's mean may be this far below a task's own experiment's mean."""

TARGETS: dict[str, tuple[float, float]] = {
    # env folder name -> (mean at least, worst seed at least): the final deterministic
    # return on fresh seeds at the experiment's budget (1M steps; LunarLander 200k).
    "hopper_v5": (3_500, 3_000),
    "walker2d_v5": (5_000, 4_000),
    "halfcheetah_v5": (5_000, 4_000),
    "ant_v5": (3_000, 2_500),
    "humanoid_v5": (1_500, 1_000),
    "swimmer_v5": (360, 350),
    "bipedalwalker_v3": (300, 280),
    "lunarlander_v3": (200, 150),
    "lunarlandercontinuous_v3": (250, 200),
}


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + ½ P(X = Y) for X drawn from ``x``, Y from ``y`` (all pairs)."""
    greater = (x[:, None] > y[None, :]).mean()
    ties = (x[:, None] == y[None, :]).mean()
    return float(greater + 0.5 * ties)


def bootstrap_improvement_ci(
    x: np.ndarray, y: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile 95% CI of :func:`probability_of_improvement`, resampling each side's seeds."""
    rng = np.random.default_rng(seed)
    values = [
        probability_of_improvement(
            x[rng.integers(0, x.size, x.size)], y[rng.integers(0, y.size, y.size)]
        )
        for _ in range(resamples)
    ]
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _trpo_run(path: Path) -> dict | None:
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    stochastic = None
    with open(path / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and rows[-1].get("eval_return_stochastic"):
        stochastic = float(rows[-1]["eval_return_stochastic"])
    config = read_config(path) or {}
    return {
        "env_id": (config.get("env") or {}).get("id"),
        "final": summary["final_eval_return"],
        "stochastic": stochastic,
        "best": summary.get("best_eval_return"),
        "best_env_steps": summary.get("best_env_steps"),
        "env_steps": summary["env_steps"],
    }


def _sb3_run(path: Path) -> dict | None:
    result = path / "result.json"
    if not result.is_file():
        return None
    data = json.loads(result.read_text())
    return {
        "final": data["eval_return"],
        "env_steps": data["env_steps"],
        "env_id": data.get("env_id"),
    }


def env_label(env: str, sides: dict[str, dict[int, dict]]) -> str:
    """The env id the runs name (the folder's ``<env>`` where none does), with the budget
    beside it when it is short of 1M steps: ``LunarLander-v3 (200k)``."""
    runs = [run for side in sides.values() for run in side.values()]
    ids = [run["env_id"] for run in runs if run.get("env_id")]
    label = ids[0] if ids else env
    steps = max(run["env_steps"] for run in runs)
    if steps < 0.9 * FULL_BUDGET:
        label += f" ({(round(steps, -4) or steps) / 1000:,.0f}k)"
    return label


def collect(folder: Path) -> dict[str, dict[str, dict[int, dict]]]:
    """``{env: {"trpo"|"sb3": {seed: run}}}`` of the finished runs in ``folder``."""
    table: dict[str, dict[str, dict[int, dict]]] = {}
    for path in sorted(folder.iterdir()):
        match = RUN_NAME.match(path.name)
        if not match or not path.is_dir():
            continue
        side, env, seed = match.group(1), match.group(2), int(match.group(3))
        run = _trpo_run(path) if side == "trpo" else _sb3_run(path)
        if run is not None:
            table.setdefault(env, {}).setdefault(side, {})[seed] = run
    return table


def _stats(values: np.ndarray) -> dict:
    low, high = bootstrap_iqm_ci(values)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "iqm": interquartile_mean(values),
        "iqm_ci95": [low, high],
        "worst": float(values.min()),
    }


def summarize(table: dict) -> dict:
    """Per env and side, the statistics above; per env, P(trpo_tf > sb3) on shared seeds."""
    report: dict = {}
    for env, sides in table.items():
        entry: dict = {}
        for side, runs in sides.items():
            seeds = sorted(runs)
            finals = np.array([runs[s]["final"] for s in seeds], np.float64)
            entry[side] = {"seeds": seeds, "finals": finals.tolist(), **_stats(finals)}
            if side == "trpo":
                entry[side]["stochastic"] = [runs[s]["stochastic"] for s in seeds]
                entry[side]["best"] = [runs[s]["best"] for s in seeds]
        shared = sorted(set(sides.get("trpo", {})) & set(sides.get("sb3", {})))
        if shared:
            x = np.array([sides["trpo"][s]["final"] for s in shared])
            y = np.array([sides["sb3"][s]["final"] for s in shared])
            entry["shared_seeds"] = shared
            entry["p_improvement"] = probability_of_improvement(x, y)
            entry["p_improvement_ci95"] = list(bootstrap_improvement_ci(x, y))
        entry["label"] = env_label(env, sides)
        report[env] = entry
    return report


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def markdown(report: dict) -> str:
    lines = [
        "| env | side | seeds | final deterministic per seed | mean ± std | IQM [95% CI] | "
        "worst | stochastic per seed | best periodic per seed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, entry in sorted(report.items()):
        for side, label in (("trpo", "trpo_tf"), ("sb3", "sb3-contrib")):
            if side not in entry:
                continue
            s = entry[side]
            low, high = s["iqm_ci95"]
            lines.append(
                f"| {entry['label']} | {label} | {', '.join(map(str, s['seeds']))} | "
                f"{', '.join(_fmt(v) for v in s['finals'])} | {s['mean']:,.0f} ± {s['std']:,.0f} | "
                f"{s['iqm']:,.0f} [{low:,.0f}, {high:,.0f}] | {s['worst']:,.0f} | "
                f"{', '.join(_fmt(v) for v in s.get('stochastic', [])) or '–'} | "
                f"{', '.join(_fmt(v) for v in s.get('best', [])) or '–'} |"
            )
    lines += ["", "| env | shared seeds | P(trpo_tf > sb3-contrib) [95% CI] |", "|---|---|---|"]
    for _, entry in sorted(report.items()):
        if "p_improvement" in entry:
            low, high = entry["p_improvement_ci95"]
            lines.append(
                f"| {entry['label']} | {', '.join(map(str, entry['shared_seeds']))} | "
                f"{entry['p_improvement']:.2f} [{low:.2f}, {high:.2f}] |"
            )
    return "\n".join(lines)


def _shortfall(value: float, target: float) -> str:
    return "met" if value >= target else f"short by {target - value:,.0f}"


def targets_markdown(report: dict) -> str:
    """trpo_tf's mean and worst seed against :data:`TARGETS`, and by how much each is missed."""
    lines = [
        "| env | seeds | trpo_tf mean | target | mean | trpo_tf worst seed | target | worst |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for env, entry in sorted(report.items()):
        if env not in TARGETS or "trpo" not in entry:
            continue
        mean_target, worst_target = TARGETS[env]
        s = entry["trpo"]
        lines.append(
            f"| {entry['label']} | {len(s['seeds'])} | {s['mean']:,.0f} | ≥ {mean_target:,.0f} | "
            f"{_shortfall(s['mean'], mean_target)} | {s['worst']:,.0f} | ≥ {worst_target:,.0f} | "
            f"{_shortfall(s['worst'], worst_target)} |"
        )
    return "\n".join(lines)


def default_comparison(own: dict, default: dict) -> dict:
    """Per env both tables ran trpo_tf on: the seeds both ran, each side's final
    returns there, their means, and the default's mean relative to the task's own."""
    rows = {}
    for env in sorted(set(own) & set(default)):
        mine, shared_default = own[env].get("trpo", {}), default[env].get("trpo", {})
        seeds = sorted(set(mine) & set(shared_default))
        if not seeds:
            continue
        finals = np.array([mine[s]["final"] for s in seeds], np.float64)
        default_finals = np.array([shared_default[s]["final"] for s in seeds], np.float64)
        ratio = float(default_finals.mean() / finals.mean()) if finals.mean() > 0 else None
        rows[env] = {
            "label": env_label(env, {"own": mine, "default": shared_default}),
            "seeds": seeds,
            "own": finals.tolist(),
            "default": default_finals.tolist(),
            "own_mean": float(finals.mean()),
            "default_mean": float(default_finals.mean()),
            "ratio": ratio,
            "within": ratio is not None and ratio >= 1.0 - DEFAULT_TOLERANCE,
        }
    return rows


def default_markdown(rows: dict) -> str:
    """:func:`default_comparison` as a table, with how far the default is from 85%."""
    lines = [
        "| env | seeds | own experiment per seed | mean | the default per seed | mean | "
        f"default / own | within {DEFAULT_TOLERANCE:.0%} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows.values():
        ratio = "–" if row["ratio"] is None else f"{row['ratio']:.2f}"
        floor = (1.0 - DEFAULT_TOLERANCE) * row["own_mean"]
        verdict = "yes" if row["within"] else f"no, short by {floor - row['default_mean']:,.0f}"
        lines.append(
            f"| {row['label']} | {', '.join(map(str, row['seeds']))} | "
            f"{', '.join(_fmt(v) for v in row['own'])} | {row['own_mean']:,.0f} | "
            f"{', '.join(_fmt(v) for v in row['default'])} | {row['default_mean']:,.0f} | "
            f"{ratio} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=Path("benchmarks/results/fresh"))
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    parser.add_argument(
        "--envs", nargs="+", metavar="ID", help="only these envs (gymnasium ids; default: all)"
    )
    parser.add_argument(
        "--default",
        type=Path,
        metavar="FOLDER",
        help="a campaign of the shared default: print it beside --folder's trpo_tf runs",
    )
    args = parser.parse_args()
    table = collect(args.folder)
    if args.envs:
        wanted = {slug(env_id) for env_id in args.envs}
        table = {env: sides for env, sides in table.items() if env in wanted}
    report = summarize(table)
    print(markdown(report))
    print()
    print(targets_markdown(report))
    if args.default:
        report["default_beside_own"] = default_comparison(table, collect(args.default))
        print()
        print(default_markdown(report["default_beside_own"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
