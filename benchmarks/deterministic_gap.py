"""Why a run's deterministic policy scores below its stochastic one.

Loads a finished run (``RUN_DIR/policy``) and plays episodes with the Gaussian policy's
actions ``μ(s) + k·σ·ε`` for each noise scale ``k`` (``0`` is the deterministic policy,
``1`` the trained stochastic one), from the same reset seeds training's evaluation
uses. Per scale it reports the mean ± std return, the episode length, how many
episodes ended by termination (a fall) rather than the time limit, and the fraction of
mean-action components outside the action bounds (a mean past the bounds is clipped by
the env, so ``μ`` and the clipped action differ).

    python benchmarks/deterministic_gap.py benchmarks/results/fresh/trpo_hopper_v5_s101 \\
        --episodes 10 --scales 0 0.1 0.3 1

Reading: if returns fall as ``k`` goes to 0 (a monotone gap), the policy relies on its
noise — the mean trajectory is one training never visited — rather than on an
out-of-bounds mean.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from trpo_tf.envs import make_env_fn
from trpo_tf.evaluation import EVAL_SEED_OFFSET
from trpo_tf.run_loading import load_run


def play(env_fn, agent, scale: float, seed: int) -> dict[str, float]:
    """One episode with actions μ(s) + scale·σ·ε; its return, length and diagnostics."""
    env = env_fn()
    low, high = env.action_space.low, env.action_space.high
    rng = np.random.default_rng(seed)
    observation, _ = env.reset(seed=seed)
    total, steps, outside = 0.0, 0, 0.0
    while True:
        normalized = agent.observation_normalizer(np.asarray(observation, np.float64)[None])
        params = agent.policy.dist_params(tf.constant(normalized, tf.float32)).numpy()[0]
        mean, log_std = np.split(params, 2)
        action = mean + scale * np.exp(log_std) * rng.normal(size=mean.shape)
        outside += float(np.mean((mean < low) | (mean > high)))
        observation, reward, terminated, truncated, _ = env.step(np.clip(action, low, high))
        total += float(reward)
        steps += 1
        if terminated or truncated:
            env.close()
            return {
                "return": total,
                "length": steps,
                "terminated": float(terminated),
                "mean_outside": outside / steps,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1.0])
    parser.add_argument("--json", type=Path, help="also write the table as JSON")
    args = parser.parse_args()

    config, agent = load_run(args.run_dir)
    if 2 * int(np.prod(agent.policy.head.action_shape)) != agent.policy.head.param_dim:
        parser.error("the run's policy is not a diagonal Gaussian (params = [mean, log_std])")
    env_fn = make_env_fn(config.env.id, config.env.kwargs, config.env.max_episode_steps)
    seed = config.seed + EVAL_SEED_OFFSET
    print(f"{args.run_dir}: {config.env.id}, seed {config.seed}, {args.episodes} episodes")
    print("| noise scale k | return | length | fell | mean outside bounds |")
    print("|---|---|---|---|---|")
    rows = []
    for scale in args.scales:
        episodes = [play(env_fn, agent, scale, seed + 1000 * i) for i in range(args.episodes)]
        returns = np.array([e["return"] for e in episodes])
        row = {
            "scale": scale,
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "length_mean": float(np.mean([e["length"] for e in episodes])),
            "fell": float(np.mean([e["terminated"] for e in episodes])),
            "mean_outside": float(np.mean([e["mean_outside"] for e in episodes])),
        }
        rows.append(row)
        print(
            f"| {scale:g} | {row['return_mean']:,.0f} ± {row['return_std']:,.0f} | "
            f"{row['length_mean']:.0f} | {row['fell']:.0%} | {row['mean_outside']:.0%} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"run_dir": str(args.run_dir), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
