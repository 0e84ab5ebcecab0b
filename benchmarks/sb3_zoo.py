"""sb3-contrib TRPO with the rl-baselines3-zoo hyperparameters, as a reference run.

Two halves:

* :func:`train_sb3` trains and evaluates one seed. It needs ``sb3_contrib`` and
  ``rl_zoo3`` (the ``bench`` extra) and therefore runs in the benchmark
  environment, not in the library's own.
* :func:`run_sb3` calls it in a subprocess with that environment's Python and
  caches the result: a finished run leaves ``OUT/result.json`` and is not run
  again. ``OUT`` also gets a ``metrics.csv`` (one row per rollout: env steps,
  mean return of the last 100 training episodes, the final deterministic eval
  on the last row) and a ``config.yaml`` naming the run, so the curve can be
  drawn with :func:`trpo_tf.tracking.plots.plot_comparison` beside trpo_tf's runs.

The hyperparameters are read from the zoo's ``hyperparams/trpo.yml``. An env id
the zoo lacks falls back to its older version (``HalfCheetah-v5`` →
``HalfCheetah-v4``, the zoo's MuJoCo entries), then to the zoo's ``default``
entry; the env itself is always the id asked for. The step budget is the
caller's, not the zoo's ``n_timesteps``, so both libraries get the same budget.

    .venv-bench/bin/python benchmarks/sb3_zoo.py --env Swimmer-v5 --seed 0 \\
        --steps 1000000 --out benchmarks/results/learning/swimmer/sb3_seed0
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
RUN_NAME = "sb3-contrib TRPO (zoo)"
RESULT = "result.json"
EVAL_EPISODES = 10
# Zoo keys that are not TRPO constructor arguments.
_NOT_ALGORITHM = ("n_timesteps", "policy", "n_envs", "normalize", "env_wrapper", "frame_stack")


def zoo_file() -> Path:
    """``hyperparams/trpo.yml`` of the installed ``rl_zoo3``."""
    import rl_zoo3

    return Path(rl_zoo3.__file__).parent / "hyperparams" / "trpo.yml"


def zoo_hyperparameters(env_id: str, path: Path | None = None) -> tuple[str, dict[str, Any]]:
    """The zoo entry used for ``env_id`` and its hyperparameters (merge keys resolved).

    Returns:
        ``(zoo_key, hyperparameters)``; ``zoo_key`` is ``env_id``, an older
        version of it, or ``default``.
    """
    table = yaml.safe_load(Path(path or zoo_file()).read_text())
    name, _, version = env_id.rpartition("-v")
    candidates = [env_id]
    if name and version.isdigit():
        candidates += [f"{name}-v{v}" for v in range(int(version) - 1, -1, -1)]
    for key in [*candidates, "default"]:
        if key in table:
            return key, dict(table[key])
    raise KeyError(f"no zoo entry for {env_id} and no default entry in {path}")


def _write_curve(out: Path, rows: list[dict[str, Any]], config: dict[str, Any]) -> None:
    columns = ["iteration", "env_steps", "wall_time_s", "episode_return_mean"]
    columns += ["eval_return", "eval_return_std"]
    with open(out / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _evaluate_on_trpo_tf_seeds(
    model: Any, env_id: str, vec_normalize: Any, episodes: int, seed: int
) -> list[float]:
    """Deterministic returns of ``model`` from trpo_tf's evaluator and reset seeds."""
    import gymnasium as gym

    from trpo_tf.evaluation import evaluate

    class Identity:
        """Actions from ``model.predict`` are already what the env takes (clipped)."""

        @staticmethod
        def to_env_action(actions: np.ndarray) -> np.ndarray:
            return actions

    def normalize(raw: np.ndarray) -> np.ndarray:
        return raw if vec_normalize is None else vec_normalize.normalize_obs(raw)

    returns = evaluate(
        lambda: gym.make(env_id),
        lambda obs: model.predict(obs, deterministic=True)[0],
        Identity(),
        normalize,
        episodes,
        seed=seed,
    )
    return returns.tolist()


def train_sb3(
    env_id: str,
    seed: int,
    total_steps: int,
    out: Path | None = None,
    eval_episodes: int = EVAL_EPISODES,
    matched_eval_seed: int | None = None,
    without_sde: bool = False,
) -> dict[str, Any]:
    """Train sb3-contrib TRPO (zoo hyperparameters) on ``env_id``; evaluate deterministically.

    Torch uses one thread. With the zoo's ``normalize: true`` the env is wrapped in
    ``VecNormalize`` (γ from the zoo entry) and evaluation uses the frozen
    observation statistics and raw rewards. With ``matched_eval_seed`` the
    evaluation runs through trpo_tf's own evaluator (episode i starts from
    ``reset(seed=matched_eval_seed + i)``), so both libraries are scored on the
    same initial states; otherwise sb3's ``evaluate_policy`` on one env seeded
    ``seed + 10_000``. ``without_sde`` drops the zoo's gSDE settings (``use_sde``,
    ``sde_sample_freq``): plain Gaussian exploration, as trpo_tf's ``diag_gaussian``.

    Returns:
        ``env_steps, wall_s, steps_per_s`` (training only, evaluation excluded),
        ``rollout_s, update_s, eval_return, eval_return_std, zoo_key,
        hyperparameters`` and the library versions.
    """
    import sb3_contrib
    import stable_baselines3
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    zoo_key, hp = zoo_hyperparameters(env_id)
    if without_sde:
        hp = {k: v for k, v in hp.items() if k not in ("use_sde", "sde_sample_freq")}
    if "policy_kwargs" in hp:
        raise NotImplementedError(f"zoo entry {zoo_key} sets policy_kwargs; not supported here")
    normalize = hp.get("normalize", False)
    if not isinstance(normalize, bool):
        raise NotImplementedError(f"zoo entry {zoo_key}: normalize={normalize!r} (only booleans)")
    n_envs = int(hp.get("n_envs", 1))
    kwargs = {k: v for k, v in hp.items() if k not in _NOT_ALGORITHM}
    gamma = float(kwargs.get("gamma", 0.99))

    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:
        env = VecNormalize(env, gamma=gamma)
    model = TRPO(hp.get("policy", "MlpPolicy"), env, seed=seed, device="cpu", verbose=0, **kwargs)

    timers = {"rollout": 0.0, "update": 0.0}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                timers[name] += time.perf_counter() - start

        return wrapper

    model.collect_rollouts = timed("rollout", model.collect_rollouts)
    model.train = timed("update", model.train)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()

    class Curve(BaseCallback):
        """One row per rollout: the mean return of the last 100 training episodes."""

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            returns = [info["r"] for info in self.model.ep_info_buffer]
            rows.append(
                {
                    "iteration": len(rows) + 1,
                    "env_steps": self.model.num_timesteps,
                    "wall_time_s": round(time.perf_counter() - start, 3),
                    "episode_return_mean": float(np.mean(returns)) if returns else "",
                }
            )

    model.learn(total_timesteps=total_steps, callback=Curve())
    wall = time.perf_counter() - start

    if matched_eval_seed is not None:
        returns = _evaluate_on_trpo_tf_seeds(
            model, env_id, env if normalize else None, eval_episodes, matched_eval_seed
        )
    else:
        eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 10_000)
        if normalize:
            eval_env = VecNormalize(eval_env, training=False, norm_reward=False, gamma=gamma)
            eval_env.obs_rms = env.obs_rms
        returns, _ = evaluate_policy(
            model,
            eval_env,
            n_eval_episodes=eval_episodes,
            deterministic=True,
            return_episode_rewards=True,
        )
    result = {
        "env_id": env_id,
        "seed": seed,
        "env_steps": int(model.num_timesteps),
        "wall_s": wall,
        "steps_per_s": model.num_timesteps / wall,
        "rollout_s": timers["rollout"],
        "update_s": timers["update"],
        "eval_return": float(np.mean(returns)),
        "eval_return_std": float(np.std(returns)),
        "eval_episodes": len(returns),
        "zoo_key": zoo_key,
        "hyperparameters": {**hp, "n_timesteps": total_steps},
        "versions": {
            "sb3_contrib": str(sb3_contrib.__version__),
            "stable_baselines3": str(stable_baselines3.__version__),
            "torch": str(torch.__version__),
        },
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if rows:
            rows[-1]["eval_return"] = result["eval_return"]
            rows[-1]["eval_return_std"] = result["eval_return_std"]
        config = {"name": RUN_NAME, "seed": seed, "env": {"id": env_id}, "zoo": result}
        _write_curve(out, rows, config)
        (out / RESULT).write_text(json.dumps(result, indent=2))
    return result


def run_sb3(
    env_id: str,
    seed: int,
    total_steps: int,
    out: Path,
    python: Path | str = BENCH_PYTHON,
) -> dict[str, Any]:
    """:func:`train_sb3` in a subprocess of ``python``; cached in ``out/result.json``.

    Raises:
        RuntimeError: the subprocess failed (its log is ``out/train.log``).
    """
    out = Path(out)
    cached = out / RESULT
    if cached.is_file():
        return json.loads(cached.read_text())
    out.mkdir(parents=True, exist_ok=True)
    log = out / "train.log"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [str(python), str(Path(__file__).resolve()), "--env", env_id]
    command += ["--seed", str(seed), "--steps", str(total_steps), "--out", str(out)]
    with open(log, "w") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if code != 0 or not cached.is_file():
        tail = log.read_text()[-2000:]
        raise RuntimeError(f"sb3-contrib on {env_id} failed (exit {code}), see {log}:\n{tail}")
    return json.loads(cached.read_text())


def slug(env_id: str) -> str:
    """``Walker2d-v5`` -> ``walker2d_v5``: the env part of result folder names."""
    return re.sub(r"[^a-z0-9]+", "_", env_id.lower()).strip("_")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--episodes", type=int, default=EVAL_EPISODES)
    parser.add_argument(
        "--matched-eval",
        action="store_true",
        help="evaluate on trpo_tf's start states (reset seeds seed + 10,000 + i)",
    )
    parser.add_argument("--no-sde", action="store_true", help="drop the zoo's gSDE settings")
    args = parser.parse_args()
    name = f"{slug(args.env)}_s{args.seed}" + ("_nosde" if args.no_sde else "")
    out = args.out or ROOT / "benchmarks" / "results" / "sb3" / name
    result = train_sb3(
        args.env,
        args.seed,
        args.steps,
        out,
        args.episodes,
        matched_eval_seed=args.seed + 10_000 if args.matched_eval else None,
        without_sde=args.no_sde,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
