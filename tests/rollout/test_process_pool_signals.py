"""A SIGTERM or SIGHUP sent to the whole process group leaves the worker pool whole.

SLURM, ``kill -- -PGID`` and a closed terminal signal every process in the group:
the learner (which finishes its iteration and checkpoints), the rollout workers
(which ignore it) and the forkserver that starts them. Had the forkserver died,
every worker would read as dead and no worker could be restarted.
"""

from __future__ import annotations

import os
import signal
import time
from multiprocessing import forkserver

import gymnasium as gym
import pytest
from crashing_env import CountingEnv

from trpo_tf.config import experiment_from_dict
from trpo_tf.config.build import build_policy
from trpo_tf.errors import RolloutWorkerError
from trpo_tf.normalization import ObservationNormalizer, RewardNormalizer
from trpo_tf.rollout.async_runner import AsyncRunner
from trpo_tf.rollout.numpy_actor import NumpyActor
from trpo_tf.rollout.segment import WorkerSpec

T, K_ENVS, WORKERS = 8, 2, 2


def _runner() -> AsyncRunner:
    config = experiment_from_dict({"policy": {"hidden": [8]}})
    policy = build_policy(config, 2, gym.spaces.Discrete(2))
    return AsyncRunner(
        WorkerSpec(CountingEnv, "counting", n_envs=K_ENVS, segment_length=T, seed=0),
        NumpyActor(policy, seed=0),
        ObservationNormalizer((2,), False),
        RewardNormalizer(WORKERS * K_ENVS, 0.99, False),
        workers=WORKERS,
        max_policy_lag=100,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_forkserver_outlives_a_process_group_signal(signum: int) -> None:
    runner = _runner()
    try:
        if runner.pool.context.get_start_method() != "forkserver":
            pytest.skip("no forkserver on this platform")
        runner.collect(policy_version=1)
        server = forkserver._forkserver._forkserver_pid
        assert server is not None
        os.kill(server, signum)
        time.sleep(0.5)
        os.kill(server, 0)  # still running (raises ProcessLookupError otherwise)
        for version in (2, 3):
            rollout = runner.collect(policy_version=version)
            assert rollout.dropped_steps == 0
        assert runner.worker_restarts == 0
        # The server still starts processes: a killed worker is replaced.
        runner.pool.processes[0].kill()
        version = 4
        while runner.worker_restarts == 0 and version < 30:
            runner.collect(policy_version=version)
            version += 1
        assert runner.worker_restarts == 1
        assert runner.collect(policy_version=version).dropped_steps == 0
    finally:
        runner.close()


def test_workers_come_back_after_the_forkserver_is_killed() -> None:
    """SIGKILL cannot be ignored: the workers then read as dead (the server reported
    their exits) and are restarted through a new server."""
    runner = _runner()
    try:
        if runner.pool.context.get_start_method() != "forkserver":
            pytest.skip("no forkserver on this platform")
        runner.collect(policy_version=1)
        os.kill(forkserver._forkserver._forkserver_pid, signal.SIGKILL)
        version = 2
        while runner.worker_restarts < WORKERS and version < 30:
            runner.collect(policy_version=version)
            version += 1
        assert runner.worker_restarts == WORKERS
        assert runner.collect(policy_version=version).dropped_steps == 0
    finally:
        runner.close()


@pytest.mark.parametrize("failures", [1, 2])
def test_a_worker_start_is_tried_twice_then_one_line(monkeypatch, failures: int) -> None:
    """A server that is still exiting refuses one connection: the second try starts
    a new one. Two refusals end the run with one line naming the worker."""
    runner = _runner()
    try:
        process_class = runner.pool.context.Process
        original = process_class.start
        refused = []

        def start(self) -> None:
            if len(refused) < failures:
                refused.append(1)
                raise ConnectionRefusedError(111, "Connection refused")
            original(self)

        monkeypatch.setattr(process_class, "start", start)
        if failures == 1:
            runner.pool.restart(0, runner._snapshot)
            assert runner.pool.processes[0].is_alive()
            assert runner.collect(policy_version=1).dropped_steps == 0
        else:
            with pytest.raises(RolloutWorkerError) as raised:
                runner.pool.restart(0, runner._snapshot)
            message = str(raised.value)
            assert "\n" not in message and "could not start rollout worker 0" in message
            assert "Connection refused" in message and "runner.kind: sync" in message
    finally:
        monkeypatch.undo()
        runner.close()
