"""Time one TRPO update for a large batch on CPU and, when visible, on the GPU.

Humanoid-sized problem by default: 376-dim observations, 17-dim Gaussian actions,
256×256 tanh policy and value networks, 50,000 samples, CG 10, value fit 5 epochs
of 1,000-sample minibatches. The policy step (gradient, CG on Gauss-Newton
Fisher-vector products, line search) and the value fit are timed separately;
the whole update stays on the device (no host round-trips inside CG: with θ on a
GPU its loop predicate is the iteration counter alone). Each result also records
the ops of either compiled function that have no GPU kernel (expected: none).

    python benchmarks/gpu_update.py --repeats 5 --out docs/benchmarks/gpu_update.json

Both compilation modes by default (``--modes xla graph``): XLA fuses the many small
ops of FVP/CG/line search, graph mode launches them one by one; which one a GPU
prefers is what ``trainer.jit_compile`` should default to there.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from trpo_tf.distributions import make_diag_gaussian
from trpo_tf.networks import build_mlp
from trpo_tf.policy import Policy
from trpo_tf.trainer import TrpoHyperparameters, TrpoUpdate
from trpo_tf.trainer.placement import devices_of, on_accelerator, ops_without_kernel


def time_update(device: str, jit_compile: bool, args: argparse.Namespace) -> dict:
    with tf.device(device):
        head = make_diag_gaussian(gym.spaces.Box(-1.0, 1.0, (args.act_dim,), np.float32))
        policy = Policy(
            build_mlp(args.obs_dim, args.hidden, head.num_inputs, output_gain=0.01), head
        )
        value = build_mlp(args.obs_dim, args.hidden, 1)
        update = TrpoUpdate(
            policy,
            value,
            keras.optimizers.Adam(1e-3),
            TrpoHyperparameters(
                cg_iters=args.cg_iters,
                value_epochs=args.value_epochs,
                value_minibatch_size=args.minibatch,
            ),
            batch_size=args.batch,
            observation_dim=args.obs_dim,
            jit_compile=jit_compile,
        )
        rng = np.random.default_rng(0)
        obs = tf.constant(rng.normal(size=(args.batch, args.obs_dim)).astype(np.float32))
        dist = policy.distribution(policy.dist_params(obs))
        actions = dist.sample(seed=(1, 2))
        behavior_log_prob = dist.log_prob(actions)
        advantages = tf.constant(rng.normal(size=args.batch).astype(np.float32))

        def policy_step() -> None:
            float(update.policy_update(obs, actions, behavior_log_prob, advantages)["kl"])

        def value_fit() -> None:
            float(update.value_update(obs, advantages))

        result = {
            "device": device,
            "mode": "xla" if jit_compile else "graph",
            "variables_on": devices_of(policy.policy_variables),
            # Where θ lives decides CG's loop: all cg_iters with no device-to-host read
            # of the residual on a GPU, stopping once converged on the CPU.
            "cg_early_exit": not on_accelerator(policy.policy_variables),
        }
        for name, fn in (("policy_step", policy_step), ("value_fit", value_fit)):
            start = time.perf_counter()
            fn()
            result[f"{name}_first_s"] = time.perf_counter() - start
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            result[f"{name}_median_s"] = float(np.median(times))
        result["update_median_s"] = result["policy_step_median_s"] + result["value_fit_median_s"]
        # Ops the GPU could not run (the host would, with copies each way): none expected.
        # Audited after the timing, from the functions the first calls traced, so that
        # the first-call times keep their tracing.
        result["ops_without_gpu_kernel"] = {
            name: ops_without_kernel(function.get_concrete_function(*function.input_signature))
            for name, function in (
                ("policy_step", update.policy_update),
                ("value_fit", update.value_fit),
            )
        }
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--obs-dim", type=int, default=376)
    parser.add_argument("--act-dim", type=int, default=17)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--cg-iters", type=int, default=10)
    parser.add_argument("--value-epochs", type=int, default=5)
    parser.add_argument("--minibatch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["xla", "graph"],
        default=["xla", "graph"],
        help="compile the update with XLA (trainer.jit_compile: true) and/or without",
    )
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    gpus = tf.config.list_physical_devices("GPU")
    devices = ([] if args.skip_cpu else ["/CPU:0"]) + (["/GPU:0"] if gpus else [])
    results = [
        time_update(device, mode == "xla", args) for mode in args.modes for device in devices
    ]
    report = {
        "config": vars(args) | {"out": str(args.out) if args.out else None},
        "tensorflow": tf.__version__,
        "machine": platform.platform(),
        "gpus": [g.name for g in gpus],
        "results": results,
    }
    for mode in args.modes:
        cpu = next((r for r in results if "CPU" in r["device"] and r["mode"] == mode), None)
        gpu = next((r for r in results if "GPU" in r["device"] and r["mode"] == mode), None)
        if cpu and gpu:
            report[f"gpu_speedup_{mode}"] = cpu["update_median_s"] / gpu["update_median_s"]
    for r in results:
        print(
            f"{r['device']} ({r['mode']}): policy step {r['policy_step_median_s'] * 1000:.1f} ms "
            f"(first call {r['policy_step_first_s']:.1f} s), value fit "
            f"{r['value_fit_median_s'] * 1000:.1f} ms, update {r['update_median_s'] * 1000:.1f} ms"
            f"; ops without a GPU kernel: {r['ops_without_gpu_kernel']}"
        )
    if not gpus:
        print("no GPU visible: CPU only")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
