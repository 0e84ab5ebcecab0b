"""The training loop: collect, estimate advantages, TRPO step, log, evaluate."""

from __future__ import annotations

import functools
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from trpo_tf.agent import Agent
from trpo_tf.blas import blas_threads
from trpo_tf.checkpoint import CheckpointManager, CheckpointSchedule
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.envs import describe, make_env_fn
from trpo_tf.errors import IncompatibleSpaceError
from trpo_tf.evaluation import EVAL_SEED_OFFSET, evaluate
from trpo_tf.export import export_savedmodel
from trpo_tf.heap import frozen_heap
from trpo_tf.interfaces import Tracker
from trpo_tf.learner import Learner
from trpo_tf.resume import resume_checkpoint
from trpo_tf.rollout.actor import Actor
from trpo_tf.rollout.numpy_actor import NumpyActor, can_mirror
from trpo_tf.rollout.runners import Runner, build_runner
from trpo_tf.tf_runtime import configure_tensorflow
from trpo_tf.tracking import Progress, RunDirectory, build_trackers
from trpo_tf.tracking.factory import check_trackers
from trpo_tf.tracking.run_dir import check_run_dir_path
from trpo_tf.tracking.stall import StallWatch
from trpo_tf.trainer import TrpoUpdate
from trpo_tf.trainer.placement import devices_of


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns (also written to ``summary.json``)."""

    run_dir: Path
    env_steps: int
    wall_time_s: float
    final_eval_return: float
    final_eval_return_std: float
    eval_episodes: int

    @property
    def steps_per_s(self) -> float:
        return self.env_steps / self.wall_time_s if self.wall_time_s > 0 else 0.0


def make_actor(policy: Any, n_envs: int, observation_dim: int, seed: int) -> Actor | NumpyActor:
    """The numpy mirror when the policy allows it, else the compiled TF actor."""
    if can_mirror(policy):
        return NumpyActor(policy, seed)
    return Actor(policy, n_envs, observation_dim, seed)


def _tf_state(agent: Agent, update: TrpoUpdate, actor: Any) -> dict[str, Any]:
    objects: dict[str, Any] = {
        "policy_network": agent.policy.network,
        "policy_head": agent.policy.head,
        "value_network": agent.value_network,
        "value_optimizer": agent.value_optimizer,
        "update_generator": update.generator,
    }
    if isinstance(actor, Actor):
        objects["actor_generator"] = actor.generator
    return objects


class _GracefulInterrupt:
    """First Ctrl-C: finish the current iteration, checkpoint, stop. Second: stop now."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\ntrpo-tf: stopping after this iteration (Ctrl-C again to stop now)",
            file=sys.stderr,
        )

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


@dataclass
class _LoopState:
    """Counters of the training loop that a checkpoint carries."""

    iteration: int = 0
    recent_returns: list[float] = field(default_factory=list)
    eval_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    eval_time: float = 0.0
    elapsed: float = 0.0


def train(
    config: ExperimentConfig,
    run_dir: str | Path,
    quiet: bool = False,
    progress_every: int = 1,
    trackers: list[Tracker] | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train a TRPO agent as described by ``config``, writing ``run_dir``.

    Args:
        config: the resolved experiment.
        run_dir: where ``config.yaml``, ``metrics.csv``, ``summary.json``,
            checkpoints and the final policy go (created if missing).
        quiet: no progress output.
        progress_every: iterations between plain progress lines (non-TTY).
        trackers: extra metric sinks; ``None`` builds those ``config.tracking``
            enables.
        resume: continue from the newest checkpoint in ``run_dir``; ``config`` may
            differ from the run's ``config.yaml`` only in
            :data:`trpo_tf.resume.RESUMABLE_KEYS`.

    Raises:
        RunDirError: ``resume`` without a checkpoint in ``run_dir``.
        OutputPathError: ``run_dir`` is (inside) a file.
        ConfigError: ``resume`` with a config that changes a key a resume must keep,
            or a ``trainer.total_steps`` below the steps already trained.
        KeyboardInterrupt: after saving a checkpoint, when interrupted.
    """
    # The imports' objects out of the collector's way (trpo_tf/heap.py), and numpy's BLAS
    # held to the thread budget TensorFlow gets (trpo_tf/blas.py).
    with frozen_heap(), blas_threads(config.trainer.threads):
        return _train(config, run_dir, quiet, progress_every, trackers, resume)


def _train(
    config: ExperimentConfig,
    run_dir: str | Path,
    quiet: bool,
    progress_every: int,
    trackers: list[Tracker] | None,
    resume: bool,
) -> TrainResult:
    configure_tensorflow(config.trainer.threads, config.trainer.graph_optimizer)
    tf.random.set_seed(config.seed)
    np.random.seed(config.seed)
    run_path = Path(run_dir)
    check_run_dir_path(run_path)
    # Tracker names and settings are checked here, like every other plug-in name below,
    # before the run directory exists: a typo must not leave a half-made run behind.
    check_trackers(config)
    checkpoints = CheckpointManager(run_path / "checkpoints", config.checkpoint.keep)
    # Checked before anything is built or written: a resume that cannot work leaves
    # the run directory as it was.
    resume_from = resume_checkpoint(run_path, config) if resume else None

    env_fn = make_env_fn(config.env.id, config.env.kwargs)
    spec = describe(config.env.id, env_fn)
    agent = Agent.build(config, spec.observation_dim, spec.action_space)
    trainer = config.trainer
    steps_per_env = trainer.steps_per_iteration // config.env.n_envs
    batch_size = steps_per_env * config.env.n_envs
    learner = Learner(config, agent, batch_size, spec.observation_dim)
    update = learner.update
    actor = make_actor(agent.policy, config.env.n_envs, spec.observation_dim, config.seed)
    sampler = build_runner(config, env_fn, actor, agent, steps_per_env)
    loop = _LoopState()
    progress = Progress(1, quiet=quiet, every=progress_every)

    def restore(state: dict[str, Any]) -> None:
        nonlocal loop
        loop = state["loop"]
        agent.observation_normalizer.stats.load_state(state["obs_stats"])
        agent.reward_normalizer.stats.load_state(state["reward_stats"])
        agent.reward_normalizer.returns = state["reward_returns"]
        if isinstance(actor, NumpyActor):
            actor.rng.bit_generator.state = state["numpy_rng"]
        if not sampler.load_state(state["sampler"]):
            progress.message(
                f"resume: environment state of '{config.env.id}' could not be restored; "
                "episodes restart from reset"
            )

    tf_state = _tf_state(agent, update, actor)
    if resume_from is not None:
        # Build every variable (Adam slots included) before restoring into it.
        update.value_optimizer.build(agent.value_network.trainable_variables)
        CheckpointManager.load(resume_from, tf_state, restore)
        actor.sync()
    value_fitter = learner.value_fitter

    def save_checkpoint(in_background: bool = False) -> Path:
        """Checkpoint the state after ``loop.iteration``.

        In the background the Python state is pickled now and the write waits for
        the value fit, in the fit's thread: θ does not change before the next
        :meth:`ValueFitter.wait`, so the checkpoint is the same as a synchronous one.
        A TensorFlow actor's generator moves during the rollout: it checkpoints inline.
        """
        python_state = checkpoints.snapshot(
            {
                "loop": loop,
                "obs_stats": agent.observation_normalizer.stats.state(),
                "reward_stats": agent.reward_normalizer.stats.state(),
                "reward_returns": agent.reward_normalizer.returns,
                "numpy_rng": actor.rng.bit_generator.state
                if isinstance(actor, NumpyActor)
                else None,
                "sampler": sampler.state(),
            }
        )
        path = checkpoints.path_of(loop.iteration)
        write = functools.partial(checkpoints.save, loop.iteration, tf_state, python_state)
        if in_background and isinstance(actor, NumpyActor):
            value_fitter.then(write)
        else:
            value_fitter.wait()
            write()
        return path

    run = RunDirectory(run_path, config, resume_after=loop.iteration if resume_from else None)

    def close_all() -> None:
        """What training holds open: the progress line, fit thread, envs, metrics file."""
        progress.close()
        value_fitter.close()
        sampler.close()
        run.close()

    if trackers is None:
        try:
            trackers = build_trackers(config, run.path)
        except BaseException:
            # A tracker that breaks its contract stops the run before it starts: leave
            # the run directory as it was, so the same command works once it is fixed.
            close_all()
            if resume_from is None:
                run.discard()
            raise
    # Whole iterations only, never more than the budget (the config has room for one).
    iterations = trainer.total_steps // batch_size
    progress.total_steps = iterations * batch_size
    start = time.perf_counter() - loop.elapsed
    schedule = CheckpointSchedule(config.checkpoint, loop.elapsed)
    progress.begin(sampler.total_env_steps)
    stall = StallWatch()
    completed = False
    interrupt = _GracefulInterrupt()
    try:
        while loop.iteration < iterations:
            iteration = loop.iteration + 1
            row = _iteration(
                config, iteration, iterations, sampler, learner, actor, agent, env_fn, loop, start
            )
            loop.iteration = iteration
            loop.elapsed = time.perf_counter() - start
            run.log(row)
            for tracker in trackers:
                tracker.log(row, step=sampler.total_env_steps)
            progress.update(
                iteration,
                sampler.total_env_steps,
                row["episode_return_mean"] if loop.recent_returns else float("nan"),
                row["kl"],
                row.get("eval_return"),
            )
            warning = stall.observe(row)
            if warning:
                progress.message(warning)
            if iteration < iterations and schedule.due(iteration, loop.elapsed):
                save_checkpoint(in_background=True)
                schedule.written(loop.elapsed)
            if interrupt.requested:
                raise KeyboardInterrupt
        completed = True
        value_fitter.wait()  # the last value fit is part of training
        train_time = time.perf_counter() - start
        save_checkpoint()
        agent.save(run.policy_dir)
        try:
            export_savedmodel(agent, config, spec, run.path / "export")
        except IncompatibleSpaceError as error:
            progress.message(f"export skipped: {error}")
    except KeyboardInterrupt:
        if interrupt.requested:
            path = save_checkpoint()
            progress.message(
                f"interrupted: checkpoint of iteration {loop.iteration} saved to {path}; "
                f"continue with: trpo-tf train --resume {run.path}"
            )
        else:
            progress.message(
                "interrupted mid-iteration: the newest checkpoint is kept; "
                f"continue with: trpo-tf train --resume {run.path}"
            )
        raise
    finally:
        interrupt.restore()
        close_all()
    assert completed
    wall = time.perf_counter() - start
    eval_returns = loop.eval_returns
    result = TrainResult(
        run_dir=run.path,
        env_steps=sampler.total_env_steps,
        wall_time_s=wall,
        final_eval_return=float(eval_returns.mean()),
        final_eval_return_std=float(eval_returns.std()),
        eval_episodes=int(eval_returns.size),
    )
    summary = {
        "env_steps": result.env_steps,
        "wall_time_s": round(result.wall_time_s, 3),
        "steps_per_s": round(result.steps_per_s, 1),
        "final_eval_return": result.final_eval_return,
        "final_eval_return_std": result.final_eval_return_std,
        "eval_episodes": result.eval_episodes,
        "iterations": iterations,
        "update_retraces": update.retrace_count(),
        # Where θ lives, so where the compiled policy step ran (e.g. ["GPU:0"]).
        "update_devices": devices_of(agent.policy.policy_variables),
        "eval_time_s": round(loop.eval_time, 3),
        # Training alone: the loop up to the last value fit, without its evaluations and
        # without the final checkpoint, policy save and SavedModel export.
        "train_time_s": round(train_time, 3),
        "finalize_time_s": round(wall - train_time, 3),
        "train_steps_per_s": round(result.env_steps / max(train_time - loop.eval_time, 1e-9), 1),
    }
    run.write_summary(summary)
    for tracker in trackers:
        tracker.finish(summary, run.path)
    return result


def _iteration(
    config: ExperimentConfig,
    iteration: int,
    iterations: int,
    sampler: Runner,
    learner: Learner,
    actor: Any,
    agent: Agent,
    env_fn: Any,
    loop: _LoopState,
    start: float,
) -> dict[str, Any]:
    """Collect, learn, (evaluate); returns the metrics row."""
    t0 = time.perf_counter()
    # π_old is the learner's policy after iteration − 1 updates (version iteration).
    rollout = sampler.collect(policy_version=iteration)
    t1 = time.perf_counter()
    metrics = learner.learn(rollout, iteration)
    actor.sync()
    sampler.policy_updated(iteration + 1)
    t2 = time.perf_counter()
    loop.recent_returns = (loop.recent_returns + rollout.episode_returns.tolist())[-100:]
    row: dict[str, Any] = {
        "iteration": iteration,
        "env_steps": sampler.total_env_steps,
        "wall_time_s": round(t2 - start, 4),
        "fps": round(sampler.total_env_steps / (t2 - start), 1),
        "episode_return_mean": float(np.mean(loop.recent_returns)) if loop.recent_returns else None,
        "episode_length_mean": float(np.mean(rollout.episode_lengths))
        if rollout.episode_lengths.size
        else None,
        "episodes": int(rollout.episode_returns.size),
        "rollout_time_s": round(t1 - t0, 4),
        "update_time_s": round(t2 - t1, 4),
        "nonfinite_replaced": rollout.nonfinite_replaced,
        "dropped_fraction": rollout.dropped_steps / (rollout.dropped_steps + rollout.num_steps),
        **metrics,
    }
    if iteration % config.eval.every == 0 or iteration == iterations:
        eval_start = time.perf_counter()
        loop.eval_returns = evaluate(
            env_fn,
            actor.mode,
            agent.policy.head,
            agent.observation_normalizer,
            config.eval.episodes,
            seed=config.seed + EVAL_SEED_OFFSET,
            clip_nonfinite=config.env.clip_nonfinite,
            env_name=config.env.id,
        )
        loop.eval_time += time.perf_counter() - eval_start
        row["eval_return"] = float(loop.eval_returns.mean())
        row["eval_return_std"] = float(loop.eval_returns.std())
    return row
