"""Local and W&B tracking, learning-curve plots, multi-seed CLI.

W&B runs only in ``offline`` mode here (an ``online`` init without network waits
for its timeout); a broken W&B is simulated by making ``wandb.init`` raise.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from trpo_tf.cli import main
from trpo_tf.config import experiment_from_dict
from trpo_tf.tracking.compare import group_by_experiment, interquartile_mean, summarize
from trpo_tf.tracking.plots import plot_comparison, plot_learning_curve
from trpo_tf.tracking.safe import TrackingWarning
from trpo_tf.tracking.seeds import parse_seeds

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ITERATIONS = 2


def small_experiment(name: str, **tracking) -> dict:
    return {
        "name": name,
        "env": {"id": "CartPole-v1", "n_envs": 4},
        "trainer": {"steps_per_iteration": 512, "total_steps": 1024},
        "eval": {"every": 1, "episodes": 1},
        "tracking": tracking,
    }


@pytest.fixture(autouse=True)
def wandb_env(monkeypatch, tmp_path_factory):
    """Keep W&B offline, silent, and out of the home directory."""
    home = tmp_path_factory.mktemp("wandb_home")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / "data"))
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)


def train_recording_warnings(config, run_dir):
    from trpo_tf.train import train

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(config, run_dir, quiet=True)
    return result, [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]


# --------------------------------------------------------------------------- .wandb reader


def wandb_records(path: Path) -> list:
    """Records of a ``.wandb`` transaction log (LevelDB-style log, 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    block, header = 32768, 7
    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:header])
    assert (ident, magic) == (b":W&B", 0xBEE1)
    records, pending, pos = [], b"", header
    while pos + header <= len(data):
        left = block - pos % block
        if left < header:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + header : pos + header + length]
        pos += header + length
        if kind in (1, 2):  # full, first
            pending = chunk
        else:  # middle, last
            pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def by_type(records: list, kind: str) -> list:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


# --------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    """One short training with W&B offline (and the always-on local trackers)."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("wandb_home_module")
        patch.setenv("WANDB_SILENT", "true")
        patch.setenv("WANDB_CONFIG_DIR", str(home / "config"))
        patch.setenv("WANDB_CACHE_DIR", str(home / "cache"))
        patch.setenv("WANDB_DATA_DIR", str(home / "data"))
        patch.delenv("WANDB_BASE_URL", raising=False)
        config = experiment_from_dict(
            small_experiment(
                "wandb-offline-test",
                wandb={"enabled": True, "mode": "offline", "project": "trpo-tf-test"},
            )
        )
        run_dir = tmp_path_factory.mktemp("runs") / "offline"
        result, tracker_warnings = train_recording_warnings(config, run_dir)
    return run_dir, result, tracker_warnings


def test_offline_wandb_run_holds_config_history_and_artifact(offline_run):
    run_dir, result, tracker_warnings = offline_run
    assert tracker_warnings == []
    (wandb_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    # The W&B service may still be flushing its log when the training process moves
    # on; wait (bounded) until the log holds the run and its exit record.
    deadline = time.monotonic() + 60
    records = wandb_records(wandb_file)
    while not (by_type(records, "run") and by_type(records, "exit")):
        assert time.monotonic() < deadline, "W&B offline log never got its run/exit records"
        time.sleep(0.5)
        records = wandb_records(wandb_file)

    (run,) = by_type(records, "run")
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["name"] == "wandb-offline-test"
    assert config["trainer"]["total_steps"] == 1024
    assert run.project == "trpo-tf-test"
    assert run.run_group == "wandb-offline-test"
    assert run.job_type == "train"

    step_metrics = {m.glob_name: m.step_metric for m in by_type(records, "metric")}
    assert step_metrics.get("*") == "env_steps"

    history = [
        {
            item.nested_key[0] if item.nested_key else item.key: json.loads(item.value_json)
            for item in h.item
        }
        for h in by_type(records, "history")
    ]
    assert [row["env_steps"] for row in history] == [512 * i for i in range(1, ITERATIONS + 1)]
    assert all(np.isfinite(row["kl"]) for row in history)
    assert all("eval_return" in row and "rollout_time_s" in row for row in history)

    artifacts = by_type(records, "artifact")
    # The run's config and the SavedModel exported at the end of training.
    assert sorted(a.type for a in artifacts) == ["config", "model"]
    assert ("config", "wandb-offline-test-config") in [(a.type, a.name) for a in artifacts]

    summary = {}
    for update in by_type(records, "summary"):
        for item in update.update:
            if item.key:
                summary[item.key] = json.loads(item.value_json)
    assert summary["final_eval_return"] == pytest.approx(result.final_eval_return)


def test_tensorboard_events_hold_every_iteration(offline_run):
    import tensorflow as tf

    run_dir, _, _ = offline_run
    (events,) = (run_dir / "tensorboard").glob("events.out.tfevents.*")
    kl_steps = [
        event.step
        for event in tf.compat.v1.train.summary_iterator(str(events))
        for value in event.summary.value
        if value.tag == "kl"
    ]
    assert kl_steps == [512, 1024]


def test_learning_curve_png_written_at_the_end(offline_run):
    run_dir, _, _ = offline_run
    assert (run_dir / "learning_curve.png").read_bytes().startswith(PNG_SIGNATURE)


def test_broken_wandb_warns_once_and_training_finishes(monkeypatch, tmp_path):
    import wandb

    def broken_init(*args, **kwargs):
        raise wandb.errors.CommError("cannot reach api.wandb.ai\nsecond line")

    monkeypatch.setattr(wandb, "init", broken_init)
    config = experiment_from_dict(
        small_experiment("broken-wandb", wandb={"enabled": True, "mode": "online"})
    )
    result, tracker_warnings = train_recording_warnings(config, tmp_path / "run")
    assert result.env_steps == 1024
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["env_steps"] == 1024
    assert (tmp_path / "run" / "learning_curve.png").exists()
    assert len(tracker_warnings) == 1
    (message,) = tracker_warnings
    assert message.startswith("trpo-tf: warning: W&B disabled: CommError: cannot reach")
    assert message.endswith("training continues with local tracking")


# --------------------------------------------------------------------------- trackers alone


class _FailingRun:
    id = "failing-run"

    def __init__(self):
        self.summary = {}
        self.finished = False

    def define_metric(self, *args, **kwargs):
        pass

    def log(self, data):
        raise OSError("disk full")

    def finish(self, exit_code=None):
        self.finished = True


def test_wandb_tracker_failure_mid_run_warns_once(monkeypatch, tmp_path):
    import wandb

    from trpo_tf.tracking.wandb_tracker import WandbTracker

    fake_run = _FailingRun()
    monkeypatch.setattr(wandb, "init", lambda **kwargs: fake_run)
    config = experiment_from_dict({"name": "x", "tracking": {"wandb": {"enabled": True}}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = WandbTracker(config, tmp_path)
        for step in (1, 2, 3):
            tracker.log({"kl": 0.1, "eval_return": None}, step=step)
        tracker.finish({"env_steps": 3}, tmp_path)
    assert [str(w.message) for w in caught] == [
        "trpo-tf: warning: W&B disabled: OSError: disk full; training continues with local tracking"
    ]


def test_disabled_wandb_and_tensorboard_build_only_the_plot(tmp_path):
    from trpo_tf.tracking import build_trackers
    from trpo_tf.tracking.plots import CurvePlotTracker

    config = experiment_from_dict(
        {"tracking": {"tensorboard": False, "wandb": {"enabled": True, "mode": "disabled"}}}
    )
    trackers = build_trackers(config, tmp_path)
    assert [type(t) for t in trackers] == [CurvePlotTracker]


# --------------------------------------------------------------------------- plots, summary


def fake_run(
    path: Path,
    name: str,
    final: float,
    scale: float,
    steps_per_s: float,
    seed: int = 0,
    **settings,
) -> Path:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"name": name, "seed": seed, **settings}))
    lines = ["iteration,env_steps,episode_return_mean,kl,eval_return,eval_return_std"]
    for i in range(1, 6):
        evaluated = f"{scale * i + 1},0.5" if i % 2 == 0 or i == 5 else ","
        lines.append(f"{i},{i * 100},{scale * i},0.01,{evaluated}")
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    (path / "summary.json").write_text(
        json.dumps({"final_eval_return": final, "steps_per_s": steps_per_s})
    )
    return path


@pytest.fixture
def fake_runs(tmp_path):
    seeds_parent = tmp_path / "a-seeds"
    for seed, final in enumerate([10.0, 20.0, 30.0, 40.0, 1000.0]):
        fake_run(seeds_parent / f"seed_{seed}", "exp-a", final, 1.0 + seed, 100.0, seed)
    single = fake_run(tmp_path / "b-run", "exp-b", 5.0, 2.0, 300.0)
    return seeds_parent, single


def test_plot_learning_curve_and_comparison_write_pngs(fake_runs, tmp_path):
    seeds_parent, single = fake_runs
    assert plot_learning_curve(single).read_bytes().startswith(PNG_SIGNATURE)
    out = plot_comparison([seeds_parent, single], tmp_path / "out" / "cmp.png")
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_summary_groups_seeds_and_reports_iqm(fake_runs, capsys):
    seeds_parent, single = fake_runs
    rows = {row.experiment: row for row in summarize([seeds_parent, single])}
    assert rows["exp-a"].seeds == 5
    assert rows["exp-a"].final_return_mean == pytest.approx(220.0)
    assert rows["exp-a"].final_return_iqm == pytest.approx(30.0)  # 1000 is trimmed
    assert rows["exp-b"].steps_per_s == pytest.approx(300.0)

    assert main(["summary", str(seeds_parent), str(single)]) == 0
    out = capsys.readouterr().out
    assert "IQM" in out.splitlines()[0]
    assert "exp-a" in out and "220.00 ± " in out and "30.00" in out


def test_plot_command_and_missing_run_dir(fake_runs, tmp_path, capsys):
    seeds_parent, _ = fake_runs
    assert main(["plot", str(seeds_parent)]) == 0
    assert (seeds_parent / "comparison.png").read_bytes().startswith(PNG_SIGNATURE)
    assert main(["plot", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_interquartile_mean():
    assert interquartile_mean(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0)
    assert interquartile_mean(np.arange(8.0)) == pytest.approx(3.5)


# --------------------------------------------------------------------------- --seeds


@pytest.mark.parametrize(
    ("spec", "seeds"),
    [("0-2", [0, 1, 2]), ("0,3", [0, 3]), ("5", [5]), ("0-1, 7", [0, 1, 7])],
)
def test_parse_seeds(spec, seeds):
    assert parse_seeds(spec) == seeds


def test_reversed_seed_range_says_so():
    from trpo_tf.errors import ConfigError

    with pytest.raises(ConfigError, match=r"range '3-1' is reversed; write 1-3"):
        parse_seeds("3-1")


@pytest.mark.parametrize("spec", ["x", "3-1", "0,,1", "1,1", "-2", "0-"])
def test_bad_seeds_exit_2(spec, tmp_path, capsys):
    experiment = tmp_path / "exp.yaml"
    experiment.write_text("name: x\n")
    assert main(["train", str(experiment), "--seeds", spec, "--run-dir", str(tmp_path)]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_train_seeds_sequentially_into_one_parent(tmp_path, capsys):
    experiment = tmp_path / "exp.yaml"
    config = small_experiment("two-seeds", tensorboard=False)
    config["trainer"]["total_steps"] = 512
    experiment.write_text(yaml.safe_dump(config))
    parent = tmp_path / "parent"
    args = ["train", str(experiment), "--seeds", "0,1", "--run-dir", str(parent), "--quiet"]
    assert main(args) == 0
    for seed in (0, 1):
        summary = json.loads((parent / f"seed_{seed}" / "summary.json").read_text())
        assert summary["env_steps"] == 512
        assert yaml.safe_load((parent / f"seed_{seed}" / "config.yaml").read_text())["seed"] == seed
    assert (parent / "learning_curve.png").read_bytes().startswith(PNG_SIGNATURE)
    out = capsys.readouterr().out
    assert "IQM" in out and "two-seeds" in out
    assert main(args) == 2  # the seeds' directories are taken now


def test_wandb_run_id_is_kept_so_a_resumed_run_continues_it(offline_run, monkeypatch):
    run_dir, _, _ = offline_run
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    offline_dirs = list((run_dir / "wandb").glob("offline-run-*"))
    assert offline_dirs and all(d.name.endswith(f"-{run_id}") for d in offline_dirs)

    import wandb

    from trpo_tf.tracking.wandb_tracker import WandbTracker

    seen = {}

    class FakeRun:
        id = run_id

        def define_metric(self, *args, **kwargs):
            pass

    def fake_init(**kwargs):
        seen.update(kwargs)
        return FakeRun()

    monkeypatch.setattr(wandb, "init", fake_init)
    config = experiment_from_dict(
        small_experiment("wandb-offline-test", wandb={"enabled": True, "mode": "offline"})
    )
    WandbTracker(config, run_dir)
    assert seen["id"] == run_id and seen["resume"] == "allow"


def test_summary_json_is_strict_json_with_null_for_nan(tmp_path):
    from trpo_tf.tracking.compare import final_eval_return
    from trpo_tf.tracking.run_dir import SUMMARY_KEYS, RunDirectory

    run = RunDirectory(tmp_path / "run", experiment_from_dict({"name": "nan"}))
    run.log({"iteration": 1, "env_steps": 10, "eval_return": 3.0})
    run.close()
    summary = {key: 1 for key in SUMMARY_KEYS}
    summary.update(final_eval_return=float("nan"), final_eval_return_std=np.float32("inf"))
    path = run.write_summary(summary)

    def reject(constant):
        raise AssertionError(f"summary.json holds {constant}")

    data = json.loads(path.read_text(), parse_constant=reject)
    assert data["final_eval_return"] is None and data["final_eval_return_std"] is None
    assert final_eval_return(tmp_path / "run") == 3.0  # readers fall back to metrics.csv
    assert summarize([tmp_path / "run"])[0].final_return_mean == 3.0


def test_plot_comparison_rejects_unwritable_or_unsupported_out(fake_runs, tmp_path):
    from trpo_tf.errors import OutputPathError

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OutputPathError, match="afile is a file"):
        plot_comparison(fake_runs, afile / "x.png")
    with pytest.raises(OutputPathError, match=r"'\.txt'.*\.png.*\.pdf"):
        plot_comparison(fake_runs, tmp_path / "x.txt")
    assert plot_comparison(fake_runs, tmp_path / "x.pdf").stat().st_size > 0


def test_runs_of_one_name_with_different_settings_are_separate_experiments(tmp_path, capsys):
    kl01 = {"trainer": {"max_kl": 0.01, "total_steps": 4096}, "tracking": {"wandb": {"id": "a"}}}
    kl05 = {"trainer": {"max_kl": 0.05, "total_steps": 8192}}
    runs = [
        fake_run(tmp_path / "cp", "cartpole", 10.0, 1.0, 100.0, 0, **kl01),
        fake_run(tmp_path / "cp_kl05", "cartpole", 30.0, 2.0, 100.0, 0, **kl05),
        # Seed 1 of the first experiment: only seed and tracking differ.
        fake_run(tmp_path / "cp_s1", "cartpole", 20.0, 1.0, 100.0, 1, **{**kl01, "tracking": {}}),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no duplicate-seed warning: seeds 0 and 1, and 0
        rows = summarize(runs)
    assert [(row.experiment, row.seeds, row.final_return_mean) for row in rows] == [
        ("cartpole [trainer.max_kl=0.01, trainer.total_steps=4096]", 2, 15.0),
        ("cartpole [trainer.max_kl=0.05, trainer.total_steps=8192]", 1, 30.0),
    ]
    assert main(["plot", *map(str, runs), "--out", str(tmp_path / "cmp.png")]) == 0
    assert capsys.readouterr().err == ""


def test_a_key_missing_from_an_older_config_counts_as_its_default(tmp_path):
    # A run written before trainer.entropy_coef existed, one with its default written out,
    # and one that changes it: the first two are seeds of one experiment.
    old = fake_run(tmp_path / "old", "walker", 10.0, 1.0, 100.0, 0, trainer={"max_kl": 0.04})
    new = fake_run(
        tmp_path / "new",
        "walker",
        20.0,
        1.0,
        100.0,
        1,
        trainer={"max_kl": 0.04, "entropy_coef": 0.0},
    )
    bonus = fake_run(
        tmp_path / "bonus",
        "walker",
        30.0,
        1.0,
        100.0,
        0,
        trainer={"max_kl": 0.04, "entropy_coef": 0.01},
    )
    groups = group_by_experiment([old, new, bonus])
    assert groups == {
        "walker [trainer.entropy_coef=0.0]": [old, new],
        "walker [trainer.entropy_coef=0.01]": [bonus],
    }
    # A config today's schema refuses is compared as written, not dropped.
    odd = fake_run(tmp_path / "odd", "walker", 5.0, 1.0, 100.0, 0, trainer={"no_such_key": 1})
    assert list(group_by_experiment([odd, old]).values()) == [[odd], [old]]


def test_same_seed_twice_in_one_experiment_warns_on_stderr(fake_runs):
    seeds_parent, single = fake_runs
    result = subprocess.run(
        [sys.executable, "-m", "trpo_tf.cli", "summary", str(single), str(single)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "exp-b" in result.stdout
    [line] = [line for line in result.stderr.splitlines() if "warning" in line]
    assert line.startswith("trpo-tf: warning:") and "both seed 0 of 'exp-b'" in line, line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["summary", str(seeds_parent)]) == 0  # five distinct seeds


def test_runs_without_config_keep_their_directory_name_as_experiment(fake_runs, tmp_path):
    seeds_parent, _ = fake_runs
    reference = tmp_path / "sb3_reference"
    reference.mkdir()
    (reference / "metrics.csv").write_text("iteration,env_steps,episode_return_mean\n1,100,5\n")
    (reference / "result.json").write_text('{"final_eval_return": 5.0}')
    rows = summarize([seeds_parent, reference])
    assert [(row.experiment, row.seeds) for row in rows] == [("exp-a", 5), ("sb3_reference", 1)]


def test_plot_help_documents_both_default_outputs(capsys):
    with pytest.raises(SystemExit):
        main(["plot", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "RUN_DIR/comparison.png for one RUN_DIR" in text
    assert "./comparison.png in the current directory for several" in text
