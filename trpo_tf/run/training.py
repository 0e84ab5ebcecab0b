"""A training run as one object whose phases read top to bottom.

::

    run = TrainingRun(config, run_path, ...)     build: env, agent, learner, runner
    run.restore(checkpoint)                      (--resume) the checkpoint's state
    run.open(existed)                            run directory, trackers
    while not run.done:
        run.iterate()                            collect, learn, (evaluate), log
        run.checkpoint_if_due()                  periodic checkpoint (by the schedule)
        stop requested? -> run.stop(...)         checkpoint of the last whole iteration
    result = run.finish()                        final checkpoint, policy, export, summary
    run.close()

Locking (:mod:`trpo_tf.run.lock`), stop requests (:mod:`trpo_tf.run.signals`) and
the checkpoint format (:mod:`trpo_tf.checkpoint`) each live in a module of their
own; :func:`trpo_tf.train.train` puts them around this object.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from trpo_tf import atomic
from trpo_tf.agent import Agent
from trpo_tf.checkpoint import CheckpointManager, CheckpointSchedule
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.envs import describe, make_env_fn
from trpo_tf.errors import IncompatibleSpaceError, first_line
from trpo_tf.export import export_savedmodel
from trpo_tf.interfaces import Tracker
from trpo_tf.learner import Learner
from trpo_tf.rollout.actor import Actor, RecurrentActor
from trpo_tf.rollout.numpy_actor import (
    NumpyActor,
    NumpyRecurrentActor,
    can_mirror,
    can_mirror_recurrent,
)
from trpo_tf.rollout.runners import Runner, StepBudgetSpent, build_runner
from trpo_tf.run.best import BestPolicy, BestRecord, best_summary, read_record
from trpo_tf.run.evaluation import PolicyEvaluation
from trpo_tf.run.run_state import LoopState, python_state, restore_python_state, tf_state
from trpo_tf.run.signals import Stopped
from trpo_tf.run.summary import TrainResult, summary_of
from trpo_tf.tf_runtime import configure_tensorflow
from trpo_tf.tracking import Progress, RunDirectory, build_trackers
from trpo_tf.tracking.stall import StallWatch
from trpo_tf.trainer.placement import devices_of


def make_actor(
    policy: Any, n_envs: int, observation_dim: int, seed: int
) -> Actor | NumpyActor | RecurrentActor | NumpyRecurrentActor:
    """The numpy mirror when the policy allows it, else the compiled TF actor (which
    carries the state of a recurrent policy)."""
    if policy.recurrent:
        if can_mirror_recurrent(policy):
            return NumpyRecurrentActor(policy, seed)
        return RecurrentActor(policy, n_envs, observation_dim, seed)
    if can_mirror(policy):
        return NumpyActor(policy, seed)
    return Actor(policy, n_envs, observation_dim, seed)


class TrainingRun:
    """Everything one training process holds, and the phases of its life.

    Args:
        config: the resolved experiment.
        run_path: the run directory (locked by the caller).
        quiet: no progress output (stop and resume notices still print).
        progress_every: iterations between plain progress lines (non-TTY).
    """

    def __init__(
        self, config: ExperimentConfig, run_path: Path, quiet: bool, progress_every: int
    ) -> None:
        configure_tensorflow(config.trainer.threads, config.trainer.graph_optimizer)
        tf.random.set_seed(config.seed)
        np.random.seed(config.seed)
        self.config = config
        self.run_path = run_path
        self.checkpoints = CheckpointManager(run_path / "checkpoints", config.checkpoint.keep)
        self.env_fn = make_env_fn(config.env.id, config.env.kwargs, config.env.max_episode_steps)
        self.spec = describe(config.env.id, self.env_fn)
        self.agent = Agent.build(
            config,
            self.spec.observation_dim,
            self.spec.action_space,
            self.spec.env_observation_space,
        )
        steps_per_env = config.trainer.steps_per_iteration // config.env.n_envs
        self.batch_size = steps_per_env * config.env.n_envs
        self.learner = Learner(config, self.agent, self.batch_size, self.spec.observation_dim)
        self.actor = make_actor(
            self.agent.policy, config.env.n_envs, self.spec.observation_dim, config.seed
        )
        # [rollout] Starting the runner (a Ray instance, worker processes) counts in the
        # run's wall time: open() starts the clock this much earlier.
        runner_start = time.perf_counter()
        self.sampler: Runner = build_runner(
            config, self.env_fn, self.actor, self.agent, steps_per_env
        )
        self.runner_start_s = time.perf_counter() - runner_start
        self.budget_spent = False  # [rollout] async runners: dropped steps used the budget's room
        self.loop = LoopState()
        # Whole iterations only, never more than the budget (the config has room for one).
        self.iterations = config.trainer.total_steps // self.batch_size
        self.progress = Progress(
            self.iterations * self.batch_size, quiet=quiet, every=progress_every
        )
        self.tf_objects = tf_state(self.agent, self.learner.update, self.actor)
        self.run: RunDirectory | None = None
        self.trackers: list[Tracker] = []
        self.stall = StallWatch()
        self.start = 0.0
        self.schedule: CheckpointSchedule | None = None
        self.best = BestPolicy(run_path, config.eval.keep_best)
        self.evaluation = PolicyEvaluation(
            config, self.env_fn, self.agent, self.actor, self.spec.observation_dim
        )

    # -- start ---------------------------------------------------------------------------

    def restore(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint``: every variable, counter, RNG and normalizer."""
        # Build every variable (Adam slots included) before restoring into it.
        self.learner.update.value_optimizer.build(self.agent.value_network.trainable_variables)
        notes = CheckpointManager.load(checkpoint, self.tf_objects, self._restore_python)
        self.actor.sync()
        for note in notes:
            self.progress.message(f"resume: {note}", always=True)

    def _restore_python(self, state: dict[str, Any]) -> None:
        self.loop, sampler_restored = restore_python_state(
            state, self.agent, self.actor, self.sampler, self.learner.recurrent_values
        )
        if not sampler_restored:
            self.progress.message(
                f"resume: environment state of '{self.config.env.id}' could not be restored; "
                "episodes restart from reset",
                always=True,
            )

    def open(self, existed: bool, trackers: list[Tracker] | None, resumed: bool) -> None:
        """Create (or continue) the run directory and start the trackers.

        A tracker that breaks its contract stops the run before it starts, leaving
        the run directory as it was, so the same command works once it is fixed.
        """
        self.run = RunDirectory(
            self.run_path,
            self.config,
            resume_after=self.loop.iteration if resumed else None,
            existed=existed,
        )
        if trackers is None:
            try:
                trackers = build_trackers(self.config, self.run.path)
            except BaseException:
                self.close()
                if not resumed:
                    self.run.discard()
                raise
        self.trackers = trackers
        self.start = time.perf_counter() - self.loop.elapsed - self.runner_start_s  # [rollout]
        self.schedule = CheckpointSchedule(self.config.checkpoint, self.loop.elapsed)
        self.progress.begin(self.trained_steps)

    # -- iterate -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.loop.iteration >= self.iterations or self.budget_spent

    @property
    def trained_steps(self) -> int:
        """Env steps the learner has trained on (what the budget counts)."""
        return self.loop.iteration * self.batch_size

    def iterate(self) -> dict[str, Any]:
        """One iteration: collect, learn, (evaluate); log its metrics row."""
        iteration = self.loop.iteration + 1
        try:
            row = self._collect_and_learn(iteration)
        except StepBudgetSpent as spent:  # [rollout] see docs/async.md, "Step budget"
            self.budget_spent = True
            self.progress.message(f"stopping: {spent}", always=True)
            if self.loop.iteration:  # summary.json's final evaluation is of the final policy
                self._evaluate(self.loop.iteration)
            return {}
        self.loop.iteration = iteration
        self.loop.elapsed = time.perf_counter() - self.start
        assert self.run is not None
        self.run.log(row)
        for tracker in self.trackers:
            tracker.log(row, step=self.sampler.total_env_steps)
        self.progress.update(
            iteration,
            self.trained_steps,
            row["episode_return_mean"] if self.loop.recent_returns else float("nan"),
            row["kl"],
            row.get("eval_return"),
        )
        warning = self.stall.observe(row)
        if warning:
            self.progress.message(warning)
        return row

    def _collect_and_learn(self, iteration: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        # π_old is the learner's policy after iteration − 1 updates (version iteration).
        rollout = self.sampler.collect(policy_version=iteration)
        t1 = time.perf_counter()
        metrics = self.learner.learn(rollout, iteration)
        self.actor.sync()
        self.sampler.policy_updated(iteration + 1)
        t2 = time.perf_counter()
        loop = self.loop
        loop.recent_returns = (loop.recent_returns + rollout.episode_returns.tolist())[-100:]
        steps = self.sampler.total_env_steps
        row: dict[str, Any] = {
            "iteration": iteration,
            "env_steps": steps,
            "wall_time_s": round(t2 - self.start, 4),
            "fps": round(steps / (t2 - self.start), 1),
            "episode_return_mean": float(np.mean(loop.recent_returns))
            if loop.recent_returns
            else None,
            "episode_length_mean": float(np.mean(rollout.episode_lengths))
            if rollout.episode_lengths.size
            else None,
            "episodes": int(rollout.episode_returns.size),
            "rollout_time_s": round(t1 - t0, 4),
            "update_time_s": round(t2 - t1, 4),
            "nonfinite_replaced": rollout.nonfinite_replaced,
            "dropped_fraction": rollout.dropped_steps / (rollout.dropped_steps + rollout.num_steps),
            # [rollout] running totals of the async runners (sync: 0)
            "dropped_steps": getattr(self.sampler, "dropped_steps_total", 0),
            "worker_restarts": getattr(self.sampler, "worker_restarts", 0),
            **metrics,
        }
        if iteration % self.config.eval.every == 0 or iteration == self.iterations:
            row.update(self._evaluate(iteration))
            record = BestRecord(iteration, steps, row["eval_return"], row["eval_return_std"])
            if self.best.consider(self.agent, record, self.loop.best_eval_return):
                self.loop.best_eval_return = record.eval_return
        return row

    def _evaluate(self, iteration: int) -> dict[str, float]:
        """Deterministic evaluation (and the stochastic policy's with ``eval.stochastic``)."""
        row = {}
        eval_start = time.perf_counter()
        self.loop.eval_returns = self.evaluation.deterministic()
        row["eval_return"] = float(self.loop.eval_returns.mean())
        row["eval_return_std"] = float(self.loop.eval_returns.std())
        if self.config.eval.stochastic:
            row["eval_return_stochastic"] = float(self.evaluation.stochastic(iteration).mean())
        self.loop.eval_time += time.perf_counter() - eval_start
        return row

    # -- checkpoint ----------------------------------------------------------------------

    def checkpoint_if_due(self) -> None:
        """A periodic checkpoint when the schedule says so (never after the last iteration)."""
        assert self.schedule is not None
        if not self.done and self.schedule.due(self.loop.iteration, self.loop.elapsed):
            self.checkpoint(in_background=True)
            self.schedule.written(self.loop.elapsed)

    def checkpoint(self, in_background: bool = False) -> Path:
        """Checkpoint the state after ``loop.iteration``.

        In the background the Python state is encoded now and the write waits for
        the value fit, in the fit's thread: θ does not change before the next
        :meth:`ValueFitter.wait`, so the checkpoint is the same as a synchronous one.
        A TensorFlow actor's generator moves during the rollout: it checkpoints inline.
        """
        assert self.run is not None
        snapshot = self.checkpoints.snapshot(
            python_state(
                self.loop, self.agent, self.actor, self.sampler, self.learner.recurrent_values
            ),
            experiment_yaml=(self.run.path / "config.yaml").read_text(),
            run_id=self.run.run_id,
        )
        iteration = self.loop.iteration
        path = self.checkpoints.path_of(iteration)
        fitter = self.learner.value_fitter

        def write() -> None:
            self.checkpoints.save(iteration, self.tf_objects, snapshot)

        if in_background and isinstance(self.actor, NumpyActor | NumpyRecurrentActor):
            fitter.then(write)
        else:
            fitter.wait()
            write()
        return path

    # -- stop ----------------------------------------------------------------------------

    def stop(
        self, stopped: Stopped | KeyboardInterrupt, settled: bool, cause: Exception | None = None
    ) -> None:
        """After a stop request: checkpoint the last whole iteration when ``settled``.

        Args:
            stopped: what ended the loop.
            settled: the loop stopped between iterations (the state is that of
                ``loop.iteration``); otherwise the iteration was abandoned midway and
                the newest checkpoint already written is kept.
            cause: the error that ended the iteration after the stop request (the
                signal also stopped processes it needed), named in the message.
        """
        resume = f"continue with: trpo-tf train --resume {self.run_path}"
        if settled and self.run is not None and self.loop.iteration > 0:
            path = self.checkpoint()
            self.learner.value_fitter.wait()
            self.progress.message(
                f"stopped: checkpoint of iteration {self.loop.iteration} saved to {path}; {resume}",
                always=True,
            )
            return
        latest = self.checkpoints.latest()
        kept = f"the newest checkpoint ({latest}) is kept" if latest else "no checkpoint yet"
        why = ""
        if cause is not None:
            needed = "the signal also ended a process the iteration needed"
            why = f" ({needed}: {first_line(cause, 200)})"
        self.progress.message(f"stopped mid-iteration{why}: {kept}; {resume}", always=True)

    # -- finish --------------------------------------------------------------------------

    def finish(self) -> TrainResult:
        """The last value fit, final checkpoint, policy, export and ``summary.json``."""
        assert self.run is not None
        fitter = self.learner.value_fitter
        fitter.wait()  # the last value fit is part of training
        train_time = time.perf_counter() - self.start
        self.checkpoint()
        atomic.build_dir(self.run.policy_dir, self.agent.save, "policy")
        export_skipped = ""
        try:
            export_savedmodel(self.agent, self.config, self.spec, self.run.path / "export")
        except IncompatibleSpaceError as error:
            export_skipped = str(error)
            self.progress.message(f"export skipped: {error}", always=True)
        if not export_skipped:
            self.best.export(
                self.agent,
                self.loop.iteration,
                self.run.policy_dir,
                self.run.path / "export",
                self._export_best,
            )
        wall = time.perf_counter() - self.start
        eval_returns = self.loop.eval_returns
        result = TrainResult(
            run_dir=self.run.path,
            env_steps=self.sampler.total_env_steps,
            wall_time_s=wall,
            final_eval_return=float(eval_returns.mean()),
            final_eval_return_std=float(eval_returns.std()),
            eval_episodes=int(eval_returns.size),
            export_skipped=export_skipped,
        )
        summary = summary_of(
            result,
            iterations=self.iterations,
            update_retraces=self.learner.update.retrace_count(),
            update_devices=devices_of(self.agent.policy.policy_variables),
            eval_time_s=self.loop.eval_time,
            train_time_s=train_time,
            trained_steps=self.trained_steps,
            dropped_steps=getattr(self.sampler, "dropped_steps_total", 0),
            worker_restarts=getattr(self.sampler, "worker_restarts", 0),
            runner_start_s=self.runner_start_s,
            best=best_summary(read_record(self.run_path) if self.best.enabled else None),
        )
        self.run.write_summary(summary)
        for tracker in self.trackers:
            tracker.finish(summary, self.run.path)
        return result

    def _export_best(self, agent: Agent, out: Path) -> None:
        record = read_record(self.run_path)
        label = f"best (iteration {record.iteration}, eval return {record.eval_return:.6g})"
        export_savedmodel(agent, self.config, self.spec, out, policy_label=label)

    def close(self) -> None:
        """What training holds open: the progress line, fit thread, envs, metrics file."""
        self.progress.close()
        self.learner.value_fitter.close()
        self.sampler.close()
        if self.run is not None:
            self.run.close()
