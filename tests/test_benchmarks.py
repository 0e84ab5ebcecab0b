"""The benchmark scripts still run against the library and write their reports.

Each script runs at a toy size (a few thousand env steps, a tiny network): the
numbers are not checked here, only that every stage from training to the written
table works and reports what it was given. The measurements themselves are
docs/benchmarks/*.md.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
CHILD_ENV = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")


@pytest.fixture(scope="module")
def bench():
    """Imports a script of benchmarks/ by name (they import their siblings)."""
    sys.path.insert(0, str(BENCHMARKS))
    yield importlib.import_module
    sys.path.remove(str(BENCHMARKS))


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        env=CHILD_ENV,
        cwd=ROOT,
        timeout=240,
    )


def test_update_profile_times_both_compiled_halves(bench):
    update_profile = bench("update_profile")
    result = update_profile._measure("CartPole-v1", jit=False, calls=2, beside_python=True)
    assert set(result) == {"policy", "value"}
    assert not any(t.name == update_profile.BUSY_THREAD for t in threading.enumerate())
    for part in result.values():
        assert set(part) == {"trace_s", "first_call_s", "steady_ms", "steady_cpu_ms"}
        assert all(math.isfinite(v) and v > 0 for v in part.values()), part


@pytest.mark.parametrize("writer", ["eager", "compiled"])
def test_checkpoint_profile_times_both_writers(bench, writer):
    checkpoint_profile = bench("checkpoint_profile")
    result = checkpoint_profile._measure("CartPole-v1", writer, writes=1)
    assert set(result) == {"first_ms", "alone_ms", "beside_python_ms"}
    assert all(math.isfinite(v) and v > 0 for v in result.values()), result
    assert not any(t.name == "busy-python" for t in threading.enumerate())


def test_gpu_update_times_a_cpu_update_and_audits_its_kernels(bench, tmp_path, monkeypatch):
    gpu_update = bench("gpu_update")
    out = tmp_path / "gpu_update.json"
    toy = ["--batch", "64", "--obs-dim", "6", "--act-dim", "2", "--hidden", "8"]
    toy += ["--cg-iters", "3", "--value-epochs", "1", "--minibatch", "32", "--repeats", "1"]
    monkeypatch.setattr(sys, "argv", ["gpu_update.py", *toy, "--modes", "graph", "--out", str(out)])
    assert gpu_update.main() == 0
    report = json.loads(out.read_text())
    assert report["config"]["batch"] == 64
    [result] = report["results"]  # no GPU here: the CPU, in graph mode
    assert result["device"] == "/CPU:0" and result["mode"] == "graph"
    assert result["variables_on"] == ["CPU:0"] and result["cg_early_exit"] is True
    assert result["ops_without_gpu_kernel"] == {"policy_step": {}, "value_fit": {}}
    assert result["update_median_s"] == pytest.approx(
        result["policy_step_median_s"] + result["value_fit_median_s"]
    )
    assert "gpu_speedup_graph" not in report


def test_speed_worker_limits_and_report(bench, tmp_path, monkeypatch):
    speed = bench("speed")
    # Rounded up to whole iterations of 1,024 as sb3-contrib's learn() does: two.
    settings = dict(speed.SETTINGS["CartPole-v1"], budget=1025)
    monkeypatch.setitem(speed.SETTINGS, "CartPole-v1", settings)
    monkeypatch.setattr(speed, "EVAL_EPISODES", 2)
    ours = speed._trpo_tf("CartPole-v1", 0, speed.TRPO_TF_VARIANTS["trpo_tf_fvp20"])
    assert ours["env_steps"] == 2048
    assert ours["wall_s"] > 0 and ours["rollout_s"] > 0 and ours["update_s"] > 0
    assert ours["update_s"] + ours["rollout_s"] <= ours["wall_s"] * 1.01
    assert 0 < ours["steady_update_share"] < 1 and math.isfinite(ours["eval_return"])
    limits = speed._limits("CartPole-v1", seconds=0.2)
    assert limits["env_only"] > 0 and limits["numpy_mlp"] > 0

    # The peer's rows have the same keys; the report is checked on its arithmetic.
    peer = {key: ours[key] for key in ("env_steps", "wall_s", "steps_per_s", "update_s")}
    peer.update(rollout_s=ours["rollout_s"], eval_return=ours["eval_return"])
    peer["steps_per_s"] = ours["steps_per_s"] / 4
    entry = {"sb3": [peer], "trpo_tf_fvp20": [ours], "limit_samples": [limits], "limits": limits}
    speed._report({"reps": 1, "envs": {"CartPole-v1": entry}}, tmp_path)
    table = (tmp_path / "speed_results.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| CartPole-v1"))
    assert "| 2,048 | FVP 20% |" in row and "| 4.00x |" in row
    assert (tmp_path / "speed.png").stat().st_size > 0
    assert json.loads((tmp_path / "speed.json").read_text())["envs"]["CartPole-v1"]["limits"]

    # A table of runs that trained different step counts is refused, naming the env.
    entry["sb3"] = [dict(peer, env_steps=3072)]
    with pytest.raises(SystemExit, match="CartPole-v1: the libraries trained different step"):
        speed._report({"reps": 1, "envs": {"CartPole-v1": entry}}, tmp_path)


def _steps_sb3_learn_collects(total_timesteps: int, steps_per_iteration: int) -> int:
    """sb3's OnPolicyAlgorithm.learn loop, reduced to its step count."""
    num_timesteps = 0
    while num_timesteps < total_timesteps:
        num_timesteps += steps_per_iteration
    return num_timesteps


@pytest.mark.parametrize(
    ("budget", "per_iteration"), [(100_000, 2048), (100_000, 1024), (200_000, 2048), (4096, 2048)]
)
def test_speed_trains_both_libraries_on_the_step_count_sb3_learn_collects(
    bench, budget, per_iteration
):
    speed = bench("speed")
    expected = _steps_sb3_learn_collects(budget, per_iteration)
    assert speed.trained_steps(budget, per_iteration) == expected


def test_learning_benchmark_trains_reports_and_judges_targets(tmp_path):
    common = ["--seeds", "0", "--workers", "1", "--out", str(tmp_path / "out")]
    common += ["--set", "trainer.total_steps=2048", "--set", "eval.episodes=2"]
    report = tmp_path / "learning.md"
    cartpole = str(ROOT / "experiments" / "cartpole.yaml")
    trained = _script("learning.py", f"{cartpole}:-1000", *common, "--report", str(report))
    assert trained.returncode == 0, trained.stderr[-3000:]
    text = report.read_text()
    assert "| cartpole | CartPole-v1 | 2,048 |" in text and "| ≥ -1000 | 1/1 |" in text
    assert "over the 2 episodes" in text
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert math.isfinite(results["cartpole"]["final_return_mean"])
    assert (tmp_path / "learning_cartpole.png").stat().st_size > 0

    # The same finished run against a target it misses: the report says so, exit 1.
    missed = _script(
        "learning.py", f"{cartpole}:1e9", *common, "--report", str(report), "--report-only"
    )
    assert missed.returncode == 1, missed.stderr[-3000:]
    assert "| ≥ 1e+09 | 0/1 |" in report.read_text()


def test_async_benchmark_runs_every_variant(tmp_path):
    report = tmp_path / "async.md"
    done = _script(
        "async.py",
        *["--envs", "cartpole", "--seeds", "0", "--out", str(tmp_path / "out")],
        *["--set", "trainer.total_steps=2048", "--set", "eval.episodes=2"],
        *["--report", str(report)],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in report.read_text().splitlines() if line.startswith("| cartpole")]
    assert [row.split(" | ")[1] for row in rows] == ["sync", "async", "async-no-correction"]
    assert report.with_suffix(".png").stat().st_size > 0


def test_fresh_runs_plans_skips_resumes_and_runs(bench, tmp_path, capsys):
    fresh = bench("fresh_runs")
    assert fresh.parse_seeds("100-102,105") == (100, 101, 102, 105)
    jobs = fresh.plan(["Walker2d-v5", "Hopper-v5"], [100, 101], ["trpo", "sb3"])
    assert [job.name for job in jobs[:4]] == [
        "trpo_walker2d_v5_s100",
        "sb3_walker2d_v5_s100",
        "trpo_hopper_v5_s100",
        "sb3_hopper_v5_s100",
    ]
    args = fresh.argparse.Namespace(
        experiment="mujoco/default", set=["trainer.max_kl=0.02"], sb3_python="py", sb3_steps=10
    )
    trpo, sb3 = jobs[0], jobs[1]
    line = fresh.command(trpo, tmp_path, args)
    assert line[-2:] == ["--run-dir", str(tmp_path / trpo.name)]
    assert line[4:7] == ["mujoco/default", "--set", "env.id=Walker2d-v5"]
    assert "trainer.max_kl=0.02" in line and "eval.stochastic=true" in line
    assert fresh.command(sb3, tmp_path, args)[:3] == ["py", str(BENCHMARKS / "sb3_zoo.py"), "--env"]
    # A stopped trpo_tf run continues from its checkpoint; finished ones are skipped.
    (tmp_path / trpo.name / "checkpoints" / "iter_000050").mkdir(parents=True)
    assert fresh.state(trpo, tmp_path) == "resume"
    assert fresh.command(trpo, tmp_path, args)[-2:] == ["--resume", str(tmp_path / trpo.name)]
    (tmp_path / trpo.name / "summary.json").write_text("{}")
    (tmp_path / sb3.name).mkdir()
    assert fresh.state(sb3, tmp_path) == "start"
    (tmp_path / sb3.name / "result.json").write_text("{}")
    assert fresh.state(trpo, tmp_path) == fresh.state(sb3, tmp_path) == "done"

    # One real trpo_tf job (auto: CartPole-v1 picks the shipped cartpole), then nothing.
    folder = tmp_path / "campaign"
    argv = ["--envs", "CartPole-v1", "--seeds", "7", "--sides", "trpo", "--folder", str(folder)]
    argv += ["--set", "trainer.total_steps=2048", "--set", "eval.episodes=1"]
    assert fresh.main(argv) == 0
    run = folder / "trpo_cartpole_v1_s7"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 2048
    assert "name: cartpole" in (run / "config.yaml").read_text()
    assert "done trpo_cartpole_v1_s7" in capsys.readouterr().out
    assert fresh.main(argv) == 0
    assert "trpo_cartpole_v1_s7" not in capsys.readouterr().out  # finished: not run again


@pytest.mark.slow
def test_fresh_runs_stopped_by_sigterm_leaves_a_run_to_resume(bench, tmp_path):
    """SIGTERM to the campaign reaches its trpo_tf run once: the run checkpoints its
    last iteration (exit 143), the campaign exits 130, and the job is then resumable."""
    import signal
    import time

    fresh = bench("fresh_runs")
    folder = tmp_path / "campaign"
    argv = ["--envs", "CartPole-v1", "--seeds", "3", "--sides", "trpo", "--folder", str(folder)]
    argv += ["--set", "trainer.total_steps=10000000", "--set", "tracking.tensorboard=false"]
    process = subprocess.Popen(
        [sys.executable, str(BENCHMARKS / "fresh_runs.py"), *argv],
        env=CHILD_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = folder / "trpo_cartpole_v1_s3" / "metrics.csv"
    try:
        deadline = time.time() + 120
        while not (metrics.exists() and len(metrics.read_text().splitlines()) > 2):
            assert time.time() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "run the same command again to continue" in err
    job = fresh.Job("trpo", "CartPole-v1", 3)
    assert fresh.state(job, folder) == "resume"
    log = (folder / f"{job.name}.log").read_text()
    assert "stopped: checkpoint of iteration" in log and "Traceback" not in log


def test_startup_times_the_whole_command_and_its_phases(tmp_path):
    experiment = tmp_path / "tiny.yaml"
    experiment.write_text(
        "name: tiny\n"
        "env: {id: CartPole-v1, n_envs: 2}\n"
        "trainer: {total_steps: 1024, steps_per_iteration: 512}\n"
        "value: {epochs: 1}\n"
        "eval: {episodes: 1}\n"
        "tracking: {tensorboard: false}\n"
    )
    report, raw = tmp_path / "startup.md", tmp_path / "startup.json"
    done = _script(
        "startup.py", str(experiment), "--repeats", "1", "--report", str(report), "--json", str(raw)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(raw.read_text())
    assert len(result["whole_s"]) == len(result["import_tensorflow_s"]) == 1
    # The whole command includes importing TensorFlow, which it is timed beside.
    assert result["whole_s"][0] > result["import_tensorflow_s"][0] > 0
    phases = result["phases_s"]
    assert "import tensorflow (and list devices)" in phases
    assert any(name.startswith("first iteration") for name in phases)
    assert all(len(values) == 1 and values[0] >= 0 for values in phases.values())
    text = report.read_text()
    assert f"`trpo-tf train {experiment} --quiet`" in text
    assert "| import tensorflow (and list devices) |" in text


def test_fresh_table_compares_seed_for_seed_and_states_the_shortfall(bench, tmp_path):
    table = bench("fresh_table")

    def trpo_run(seed: int, final: float, stochastic: float, best: float) -> None:
        run = tmp_path / f"trpo_hopper_v5_s{seed}"
        run.mkdir()
        summary = {"final_eval_return": final, "best_eval_return": best, "env_steps": 999_424}
        (run / "summary.json").write_text(json.dumps(summary))
        (run / "config.yaml").write_text("env:\n  id: Hopper-v5\n")
        rows = f"iteration,eval_return_stochastic\n1,\n2,{stochastic}\n"
        (run / "metrics.csv").write_text(rows)

    def sb3_run(seed: int, final: float) -> None:
        (tmp_path / f"sb3_hopper_v5_s{seed}").mkdir()
        result = {"eval_return": final, "env_steps": 1_001_472, "env_id": "Hopper-v5"}
        (tmp_path / f"sb3_hopper_v5_s{seed}" / "result.json").write_text(json.dumps(result))

    trpo_run(100, 3_600.0, 3_100.0, 3_650.0)
    trpo_run(101, 2_900.0, 2_800.0, 3_700.0)
    trpo_run(102, 3_800.0, 3_000.0, 3_800.0)
    sb3_run(100, 3_000.0)
    sb3_run(101, 3_000.0)
    (tmp_path / "trpo_hopper_v5_s103").mkdir()  # unfinished: no summary.json, left out
    report = table.summarize(table.collect(tmp_path))
    trpo = report["hopper_v5"]["trpo"]
    assert trpo["seeds"] == [100, 101, 102] and trpo["worst"] == 2_900.0
    assert trpo["mean"] == pytest.approx(3_433.333, abs=1e-3)
    assert trpo["stochastic"] == [3_100.0, 2_800.0, 3_000.0] and trpo["best"][1] == 3_700.0
    # On the seeds both sides ran (100, 101): of the pairs of {3,600, 2,900} against
    # {3,000, 3,000}, two of four are greater.
    assert report["hopper_v5"]["shared_seeds"] == [100, 101]
    assert report["hopper_v5"]["p_improvement"] == 0.5
    text = table.markdown(report)
    # Rows are named by the env id the runs trained on.
    assert "| Hopper-v5 | trpo_tf | 100, 101, 102 | 3,600, 2,900, 3,800 |" in text
    assert "| Hopper-v5 | sb3-contrib | 100, 101 | 3,000, 3,000 | 3,000 ± 0 |" in text
    targets = table.targets_markdown(report)
    # Hopper's targets: mean 3,500 (missed by 67), worst seed 3,000 (missed by 100).
    assert "| Hopper-v5 | 3 | 3,433 | ≥ 3,500 | short by 67 | 2,900 | ≥ 3,000 | short by 100 |" in (
        targets
    )
    # A budget short of 1M steps is shown beside the id; a folder without ids keeps its name.
    short = {"trpo": {100: {"env_id": "LunarLander-v3", "env_steps": 198_656}}}
    assert table.env_label("lunarlander_v3", short) == "LunarLander-v3 (200k)"
    assert table.env_label("x_v0", {"sb3": {1: {"env_steps": 1_000_000}}}) == "x_v0"

    # The shared default beside the task's own experiment, on the seeds both ran.
    own = {
        "hopper_v5": {
            "trpo": {
                s: {"final": f, "env_steps": 999_424}
                for s, f in ((100, 3_600.0), (101, 2_900.0), (102, 3_800.0))
            }
        }
    }
    default = {
        "hopper_v5": {
            "trpo": {
                100: {"final": 3_000.0, "env_steps": 999_424},
                101: {"final": 2_000.0, "env_steps": 999_424},
            }
        },
        "ant_v5": {"trpo": {100: {"final": 1.0, "env_steps": 999_424}}},
    }
    rows = table.default_comparison(own, default)
    assert list(rows) == ["hopper_v5"] and rows["hopper_v5"]["seeds"] == [100, 101]
    # 2,500 against 3,250: 0.77, below 0.85 by 0.85 * 3,250 - 2,500 = 262.5.
    assert rows["hopper_v5"]["ratio"] == pytest.approx(2_500 / 3_250)
    assert not rows["hopper_v5"]["within"]
    assert "| 3,250 | 3,000, 2,000 | 2,500 | 0.77 | no, short by 262 |" in (
        table.default_markdown(rows)
    )
    default["hopper_v5"]["trpo"][101]["final"] = 2_600.0  # 2,800 / 3,250 = 0.86
    assert table.default_comparison(own, default)["hopper_v5"]["within"]
