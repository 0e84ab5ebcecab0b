"""``trpo-tf tune``: search space, a tiny study end to end, resuming it, pruning."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from trpo_tf.config import load_experiment  # noqa: E402
from trpo_tf.errors import ConfigError  # noqa: E402
from trpo_tf.tune import command  # noqa: E402
from trpo_tf.tune import study as tune_study  # noqa: E402
from trpo_tf.tune.pruning import (  # noqa: E402
    TOTAL_STEPS_ATTR,
    BudgetMedianPruner,
    below_median,
    evaluations,
    follow,
    value_at,
)
from trpo_tf.tune.space import Dimension, check_space, load_space, override  # noqa: E402

TINY = """\
name: tiny
env: {id: CartPole-v1, n_envs: 2}
trainer: {total_steps: 512, steps_per_iteration: 256}
value: {epochs: 1}
eval: {every: 1, episodes: 2}
tracking: {tensorboard: false}
"""
SPACE = """\
trainer.max_kl: {loguniform: [0.005, 0.05]}
value.epochs: {int: [1, 3]}
policy.hidden: {choice: [[16], [32, 32]]}
"""


def _write(tmp_path: Path) -> Path:
    experiment = tmp_path / "tiny.yaml"
    experiment.write_text(TINY)
    (tmp_path / "tiny.space.yaml").write_text(SPACE)
    return experiment


def _study(study_dir: Path):
    return optuna.load_study(study_name="trpo-tf", storage=f"sqlite:///{study_dir}/study.db")


def _args(**values) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    argv = ["tune", str(values.pop("experiment"))]
    for key, value in values.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


@pytest.mark.slow
def test_a_tiny_study_resumes_and_writes_its_reports(tmp_path: Path, capsys, monkeypatch) -> None:
    experiment = _write(tmp_path)
    study_dir = tmp_path / "study"
    reported: list[int] = []  # finished trials each time the reports were written
    write_reports = tune_study.write_reports

    def counting(study, settings) -> None:
        reported.append(sum(t.state.is_finished() for t in study.trials))
        write_reports(study, settings)

    monkeypatch.setattr(tune_study, "write_reports", counting)
    assert (
        command.run_command(_args(experiment=experiment, trials=2, parallel=2, run_dir=study_dir))
        == 0
    )
    # After each trial (a study stopped part way keeps its reports), once per trial; the two
    # trials run side by side, so the first report may already see both finished.
    assert len(reported) == 2 and reported[0] in (1, 2) and reported[1] == 2
    study = optuna.load_study(study_name="trpo-tf", storage=f"sqlite:///{study_dir}/study.db")
    assert len(study.trials) == 2
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete, [t.state for t in study.trials]
    for trial in complete:
        run = study_dir / "trials" / f"trial_{trial.number:04d}"
        assert (run / "summary.json").is_file() and (run / "config.yaml").is_file()
        trained = load_experiment(run / "config.yaml")
        assert trained.trainer.max_kl == pytest.approx(trial.params["trainer.max_kl"])
    best = load_experiment(study_dir / "best.yaml")
    assert best.trainer.max_kl == pytest.approx(study.best_trial.params["trainer.max_kl"])
    assert best.value.epochs == study.best_trial.params["value.epochs"]
    assert list(best.policy.hidden) in ([16], [32, 32])
    table = (study_dir / "trials.md").read_text()
    assert table.count("| complete |") == len(complete)
    for trial in complete:  # searched floats to 4 significant digits, as on the terminal
        assert f"| {trial.params['trainer.max_kl']:.4g} |" in table
    assert "best: trial" in capsys.readouterr().out
    if len(complete) >= 2:
        assert (study_dir / "importance.png").stat().st_size > 0

    # Rerunning the command resumes the study: one more trial, the first two kept.
    first_params = [t.params for t in study.trials]
    assert command.run_command(_args(experiment=experiment, trials=3, run_dir=study_dir)) == 0
    resumed = optuna.load_study(study_name="trpo-tf", storage=f"sqlite:///{study_dir}/study.db")
    assert len(resumed.trials) == 3
    assert [t.params for t in resumed.trials[:2]] == first_params
    assert reported[2:] == [3]  # the resumed trial's report
    # With nothing left to train, a rerun writes the reports of the study as it stands.
    (study_dir / "trials.md").unlink()
    assert command.run_command(_args(experiment=experiment, trials=3, run_dir=study_dir)) == 0
    assert reported[3:] == [3] and (study_dir / "trials.md").is_file()


def test_a_study_trains_its_own_copy_of_the_experiment_and_refuses_a_changed_one(
    tmp_path: Path,
) -> None:
    experiment = _write(tmp_path)
    settings = tune_study.TuneSettings(
        experiment=experiment,
        overrides=("value.epochs=2",),
        space=load_space(tmp_path / "tiny.space.yaml"),
        directory=tmp_path / "study",
        trials=1,
    )
    tune_study.open_study(settings)
    kept = tune_study.study_experiment(settings)
    assert load_experiment(kept) == load_experiment(experiment, ["value.epochs=2"])
    # The same experiment and --set values resume it; an edit of the file does not.
    tune_study.open_study(settings)
    experiment.write_text(TINY.replace("total_steps: 512", "total_steps: 1024"))
    with pytest.raises(ConfigError) as error:
        tune_study.open_study(settings)
    message = str(error.value)
    assert "trainer.total_steps = 512" in message and "now gives 1024" in message
    assert str(kept) in message and "\n" not in message
    changed_set = dataclasses.replace(settings, overrides=("value.epochs=3",))
    with pytest.raises(ConfigError, match="value.epochs = 2"):
        tune_study.open_study(changed_set)
    assert load_experiment(kept).trainer.total_steps == 512  # the copy is left as it was


def test_space_errors_are_one_line(tmp_path: Path) -> None:
    experiment = _write(tmp_path)
    cases = {
        "trainer.max_kl: {gaussian: [0, 1]}": "unknown distribution 'gaussian'",
        "trainer.max_kl: {loguniform: [0, 1]}": "needs low > 0",
        "trainer.max_kl: {uniform: [0.2, 0.1]}": "finite low < high",
        "value.epochs: {int: [1.5, 3]}": "bounds must be integers",
        "trainer.max_kl: 0.01": "must be one of",
        "- a list": "must map key paths",
    }
    for text, words in cases.items():
        space = tmp_path / "bad.space.yaml"
        space.write_text(text + "\n")
        with pytest.raises(ConfigError, match=words) as error:
            load_space(space)
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="trainer.max_kll"):
        check_space(experiment, (), (Dimension("trainer.max_kll", "uniform", (0.1, 0.2)),))
    with pytest.raises(ConfigError, match="search space trainer.max_kl"):
        check_space(experiment, (), (Dimension("trainer.max_kl", "uniform", (-1.0, 0.2)),))
    with pytest.raises(ConfigError, match="no search space"):
        command.run_command(_args(experiment=experiment, space=tmp_path / "none.yaml"))
    with pytest.raises(ConfigError, match=r"--prune-after must be a fraction .* got 1.5"):
        command.run_command(_args(experiment=experiment, prune_after=1.5))


def test_overrides_are_yaml_that_load_back() -> None:
    assert override("policy.hidden", [64, 64]) == "policy.hidden=[64, 64]"
    assert override("trainer.max_kl", 0.01) == "trainer.max_kl=0.01"
    assert override("env.normalize_obs", True) == "env.normalize_obs=true"


def test_a_pruned_trial_stops_its_training_process(tmp_path: Path) -> None:
    class AlwaysPrune(optuna.pruners.BasePruner):
        def prune(self, study, trial) -> bool:
            return True

    metrics = tmp_path / "metrics.csv"
    with open(metrics, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["iteration", "env_steps", "eval_return"])
        writer.writeheader()
        writer.writerow({"iteration": 1, "env_steps": 256, "eval_return": ""})
        writer.writerow({"iteration": 2, "env_steps": 512, "eval_return": 12.5})
    assert evaluations(metrics) == [(512, 12.5)]
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    trial = study.ask()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.time()
    assert follow([process], [metrics], trial) is True
    assert process.wait(timeout=10) != 0 and time.time() - started < 10
    assert study.trials[0].intermediate_values == {512: 12.5}


def test_trials_compare_at_the_latest_evaluation_at_or_before_a_step() -> None:
    # Batches of 1,024 and 4,096 steps: evaluations at different env-step counts.
    small = {25_600: 10.0, 51_200: 40.0, 76_800: 60.0, 102_400: 80.0}
    large = {102_400: 70.0, 204_800: 90.0}
    assert value_at(small, 90_000) == 60.0
    assert value_at(large, 90_000) is None
    assert value_at(large, 204_800) == 90.0
    # At 110k the others stand at 80 (small) and 70 (large): median 75.
    assert below_median(74.0, 110_000, [small, large], min_others=2)
    assert not below_median(76.0, 110_000, [small, large], min_others=2)
    # Too few others with an evaluation by the step never prunes.
    assert not below_median(-1e9, 60_000, [small, large], min_others=2)


def test_the_pruner_waits_for_its_warmup_and_compares_other_batch_shapes() -> None:
    study = optuna.create_study(direction="maximize", pruner=BudgetMedianPruner(warmup=0.5))
    for final in (100.0, 200.0, 300.0):  # complete trials, evaluated every 102,400 steps
        trial = study.ask()
        trial.report(final / 2, 102_400)
        trial.report(final, 204_800)
        study.tell(trial, final)

    def trial_at(step: int, value: float) -> bool:
        trial = study.ask()
        trial.set_user_attr(TOTAL_STEPS_ATTR, 204_800)
        trial.report(value, step)
        return trial.should_prune()

    # Before half its budget a trial is never pruned, however low.
    assert not trial_at(51_200, -1e9)
    # After it, at a step no complete trial evaluated: compared with their 102,400 values
    # (50, 100, 150): below the median 100 is pruned, above is not.
    assert trial_at(153_600, 99.0)
    assert not trial_at(153_600, 101.0)


@pytest.mark.slow
def test_a_study_over_several_seeds_takes_their_worst_and_keeps_its_seeds(tmp_path: Path) -> None:
    experiment = _write(tmp_path)
    study_dir = tmp_path / "study"
    args = _args(experiment=experiment, trials=1, seeds="3,5", objective="worst", run_dir=study_dir)
    assert command.run_command(args) == 0
    (trial,) = _study(study_dir).trials
    assert trial.state.name == "COMPLETE"
    finals, curves = [], []
    for seed in (3, 5):
        run = study_dir / "trials" / "trial_0000" / f"seed_{seed}"
        assert load_experiment(run / "config.yaml").seed == seed
        finals.append(json.loads((run / "summary.json").read_text())["final_eval_return"])
        curves.append(dict(evaluations(run / "metrics.csv")))
    assert trial.user_attrs["finals"] == pytest.approx(finals)
    assert trial.value == pytest.approx(min(finals))
    # Each evaluation reached by both runs was reported once, as their worst.
    assert trial.intermediate_values == pytest.approx(
        {step: min(curves[0][step], curves[1][step]) for step in curves[0]}
    )
    table = (study_dir / "trials.md").read_text()
    assert "seeds 3, 5, objective: the worst over the seeds" in table
    assert f"| {finals[0]:.2f}, {finals[1]:.2f} |" in table
    # The study keeps its seeds and objective: a rerun asking for others is one line.
    for other in (
        _args(experiment=experiment, trials=2, seeds="3", objective="worst", run_dir=study_dir),
        _args(experiment=experiment, trials=2, seeds="3,5", run_dir=study_dir),
    ):
        with pytest.raises(ConfigError, match=r"was run with seeds \[3, 5\] and objective worst"):
            command.run_command(other)
    assert len(_study(study_dir).trials) == 1


def test_seed_lists_parse_or_say_what_is_wrong() -> None:
    assert command.parse_seeds("0-2") == (0, 1, 2)
    assert command.parse_seeds("0,3-4,3") == (0, 3, 4)
    for bad in ("a", "2-1", "", "1,,2"):
        with pytest.raises(argparse.ArgumentTypeError, match="--seeds"):
            command.parse_seeds(bad)
    with pytest.raises(SystemExit):  # one seed or a list, not both
        _args(experiment="x.yaml", seed=1, seeds="0-2")
