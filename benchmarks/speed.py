"""Throughput of trpo_tf vs Stable-Baselines3-contrib TRPO, side by side.

Both libraries train the same env with the same hyperparameters (the
rl-baselines3-zoo TRPO settings: n_envs, steps per iteration, CG iterations,
damping, critic epochs/minibatch, γ, λ, max_kl), budget and seed, each in its
own subprocess, alternating which goes first, for several repetitions. Torch and
TensorFlow both use one thread. Also measured in the same run: the env-only
stepping rate (random actions) and a bare numpy 64×64 MLP policy stepping the
same vector env — the practical limit (best of one measurement per repetition).

Needs the ``bench`` extra (install ``torch==2.13.0`` first, then
``pip install -e '.[bench]'``)::

    python benchmarks/speed.py --envs CartPole-v1 Pendulum-v1 HalfCheetah-v5 --reps 3

Writes ``docs/benchmarks/speed_results.md``, ``speed.png`` and ``speed.json``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from speed_report import write_report

# The zoo's TRPO hyperparameters (rl-baselines3-zoo hyperparams/trpo.yml; sb3 reads them
# from the zoo file itself, Pendulum's gSDE included) mirrored for trpo_tf, and budgets.
SETTINGS = {
    "CartPole-v1": dict(
        budget=100_000,
        n_envs=2,
        n_steps=512,
        minibatch=512,
        cg_iters=15,
        cg_damping=1e-3,
        gamma=0.99,
        lam=0.98,
        critic_epochs=20,
        max_kl=0.01,
        normalize=False,
        lr=1e-3,
    ),
    "Pendulum-v1": dict(
        budget=100_000,
        n_envs=2,
        n_steps=1024,
        minibatch=128,
        cg_iters=15,
        cg_damping=0.1,
        gamma=0.9,
        lam=0.95,
        critic_epochs=15,
        max_kl=0.01,
        normalize=False,
        lr=1e-3,
        # The zoo explores Pendulum with gSDE (use_sde, sde_sample_freq 4): trpo_tf uses
        # its gsde distribution with the same sampling interval.
        gsde_resample_every=4,
    ),
    "HalfCheetah-v5": dict(
        budget=200_000,
        n_envs=2,
        n_steps=1024,
        minibatch=128,
        cg_iters=25,
        cg_damping=0.1,
        gamma=0.99,
        lam=0.95,
        critic_epochs=20,
        max_kl=0.04,
        normalize=True,
        lr=1e-3,
        # Not one of the shared hyperparameters: trpo_tf's shipped HalfCheetah experiment
        # starts the policy std at exp(-0.5) (experiments/mujoco/halfcheetah.yaml).
        log_std_init=-0.5,
    ),
}
EVAL_EPISODES = 50  # Pendulum: one of 10 start states alone moved a mean by 13


def trained_steps(budget: int, steps_per_iteration: int) -> int:
    """Env steps both libraries train on a ``budget``: whole iterations up to at least it.

    sb3-contrib's ``learn(total_timesteps=budget)`` starts another rollout while fewer
    than ``budget`` steps are done (100k at 2,048 per iteration: 49 iterations, 100,352
    steps), and trpo_tf's ``trainer.total_steps`` counts whole iterations up to at most
    its value (48, 98,304), so trpo_tf is given this count: the same iterations, the same
    data, the same number of updates.
    """
    return -(-budget // steps_per_iteration) * steps_per_iteration


@dataclass(frozen=True)
class Variant:
    """One way trpo_tf runs in the comparison."""

    fvp_subsample: float
    background_value_fit: bool = True

    @property
    def label(self) -> str:
        text = f"FVP {self.fvp_subsample:.0%}"
        return text if self.background_value_fit else f"{text}, value fit inline"


# trpo_tf runs three times: with Fisher-vector products on the whole batch (as the peer
# computes them); on a random 20% of it each update (OpenAI Baselines' TRPO computes
# them on every 5th sample; the gradient and line search keep the whole batch); and with
# the whole batch and its value fit inline instead of beside the next rollout, so that
# its update time counts the fit as the peer's counts its critic's epochs.
TRPO_TF_VARIANTS = {
    "trpo_tf": Variant(1.0),
    "trpo_tf_fvp20": Variant(0.2),
    "trpo_tf_inline": Variant(1.0, background_value_fit=False),
}


def _limits(env_id: str, seconds: float = 3.0) -> dict:
    import gymnasium as gym

    s = SETTINGS[env_id]
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)] * s["n_envs"])
    obs, _ = envs.reset(seed=0)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    space = envs.single_action_space
    out_dim = space.n if hasattr(space, "n") else int(np.prod(space.shape))
    rng = np.random.default_rng(0)
    weights = [
        (rng.normal(size=(obs_dim, 64)).astype(np.float32) * 0.1, np.zeros(64, np.float32)),
        (rng.normal(size=(64, 64)).astype(np.float32) * 0.1, np.zeros(64, np.float32)),
        (rng.normal(size=(64, out_dim)).astype(np.float32) * 0.1, np.zeros(out_dim, np.float32)),
    ]

    def policy(o: np.ndarray) -> np.ndarray:
        h = np.asarray(o, np.float32).reshape(s["n_envs"], -1)
        h = np.tanh(h @ weights[0][0] + weights[0][1])
        h = np.tanh(h @ weights[1][0] + weights[1][1])
        out = h @ weights[2][0] + weights[2][1]
        if hasattr(space, "n"):
            return np.argmax(out, axis=-1)
        sample = out + rng.standard_normal(out.shape, dtype=np.float32)
        return np.clip(sample, space.low, space.high).reshape((s["n_envs"], *space.shape))

    rates = {}
    for name, act in (("env_only", lambda o: envs.action_space.sample()), ("numpy_mlp", policy)):
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            obs, *_ = envs.step(act(obs))
            steps += s["n_envs"]
        rates[name] = steps / (time.perf_counter() - start)
    envs.close()
    return rates


def _sb3(env_id: str, seed: int) -> dict:
    # Same zoo hyperparameters and evaluation as the learning benchmark's reference runs.
    from sb3_zoo import train_sb3

    # Scored on the same initial states as trpo_tf's evaluation (config.seed + 10_000).
    result = train_sb3(
        env_id,
        seed,
        SETTINGS[env_id]["budget"],
        eval_episodes=EVAL_EPISODES,
        matched_eval_seed=seed + 10_000,
    )
    keys = ("env_steps", "wall_s", "steps_per_s", "rollout_s", "update_s", "eval_return")
    return {key: result[key] for key in keys}


def _policy_settings(s: dict) -> dict:
    if "gsde_resample_every" in s:
        kwargs = {"resample_every": s["gsde_resample_every"]}
        return {"distribution": "gsde", "distribution_kwargs": kwargs}
    if "log_std_init" in s:
        return {"distribution_kwargs": {"log_std_init": s["log_std_init"]}}
    return {}


def _trpo_tf(env_id: str, seed: int, variant: Variant) -> dict:
    from trpo_tf.config import experiment_from_dict
    from trpo_tf.train import train

    s = SETTINGS[env_id]
    config = experiment_from_dict(
        {
            "name": f"speed-{env_id}",
            "seed": seed,
            "env": {
                "id": env_id,
                "n_envs": s["n_envs"],
                "normalize_obs": s["normalize"],
                "normalize_reward": s["normalize"],
            },
            "value": {
                "learning_rate": s["lr"],
                "epochs": s["critic_epochs"],
                "minibatch_size": s["minibatch"],
            },
            "advantage": {"gamma": s["gamma"], "lam": s["lam"]},
            "trainer": {
                "total_steps": trained_steps(s["budget"], s["n_steps"] * s["n_envs"]),
                "steps_per_iteration": s["n_steps"] * s["n_envs"],
                "max_kl": s["max_kl"],
                "cg_iters": s["cg_iters"],
                "cg_damping": s["cg_damping"],
                "fvp_subsample": variant.fvp_subsample,
                "overlap_value_fit": variant.background_value_fit,
                "threads": 1,
            },
            "policy": _policy_settings(s),
            "eval": {"every": 10**6, "episodes": EVAL_EPISODES},
            "tracking": {"tensorboard": False},
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, Path(tmp) / "run", quiet=True)
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
        with open(Path(tmp) / "run" / "metrics.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
    # Training only, as for sb3-contrib (whose timer stops when learn() returns): without
    # the evaluations and the final checkpoint, policy save and SavedModel export.
    wall = summary["train_time_s"] - summary["eval_time_s"]
    update = np.array([float(r["update_time_s"]) for r in rows])
    rollout = np.array([float(r["rollout_time_s"]) for r in rows])
    return {
        "env_steps": result.env_steps,
        "wall_s": wall,
        "steps_per_s": result.env_steps / wall,
        "rollout_s": float(rollout.sum()),
        "update_s": float(update.sum()),
        # The first two iterations trace and instantiate the compiled functions (the
        # value fit's first call lands in the second): their excess over a steady
        # iteration is the one-time compile cost.
        "compile_s": float(update[:2].sum() - 2 * np.median(update)),
        "steady_update_share": float(np.median(update) / np.median(update + rollout)),
        "eval_return": result.final_eval_return,
    }


WORKERS = {
    "sb3": _sb3,
    **{
        name: functools.partial(_trpo_tf, variant=variant)
        for name, variant in TRPO_TF_VARIANTS.items()
    },
}


def _spawn(kind: str, env_id: str, seed: int) -> dict:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--envs", env_id, "--seed", str(seed)],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} on {env_id} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def _report(results: dict, out_dir: Path) -> None:
    write_report(
        results,
        out_dir,
        TRPO_TF_VARIANTS,
        list(WORKERS),
        EVAL_EPISODES,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(SETTINGS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--worker", choices=[*WORKERS, "limits"])
    parser.add_argument(
        "--merge", action="store_true", help="replace only these envs in OUT/speed.json"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the table and chart from OUT/speed.json"
    )
    args = parser.parse_args()
    if args.report_only:
        _report(json.loads((args.out / "speed.json").read_text()), args.out)
        return 0
    if args.worker == "limits":
        print(json.dumps(_limits(args.envs[0])))
        return 0
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.envs[0], args.seed)))
        return 0
    results: dict = {"reps": args.reps, "envs": {}}
    if args.merge:
        results = json.loads((args.out / "speed.json").read_text())
        if results["reps"] != args.reps:
            raise SystemExit(f"--merge: {args.out}/speed.json has {results['reps']} repetitions")
    for env_id in args.envs:
        entry: dict = {kind: [] for kind in WORKERS}
        entry["limit_samples"] = []
        for rep in range(args.reps):
            # Measured before every repetition; the best sample is the limit (a busy
            # host only ever slows a measurement down).
            entry["limit_samples"].append(_spawn("limits", env_id, 0))
            entry["limits"] = {
                key: max(sample[key] for sample in entry["limit_samples"])
                for key in entry["limit_samples"][0]
            }
            order = list(WORKERS) if rep % 2 == 0 else list(WORKERS)[::-1]
            for kind in order:
                entry[kind].append(_spawn(kind, env_id, args.seed + rep))
                print(f"{env_id} rep {rep} {kind}: {entry[kind][-1]}", flush=True)
        results["envs"][env_id] = entry
        args.out.mkdir(parents=True, exist_ok=True)
        _report(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
