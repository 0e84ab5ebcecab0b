"""Joining Ray clusters: bounded connection checks, token authentication, a second node.

Clusters are real ``ray start`` processes: a head with authentication on, and
one with it off that a second node (a raylet of its own) joins. This process runs
with a HOME of its own, so no ``~/.ray/auth_token`` of the machine's user is read
or written.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from ray_support import RayNode, free_port, isolated_ray_env, write_token

from trpo_tf.config import experiment_from_dict
from trpo_tf.config.build import build_policy
from trpo_tf.errors import ConfigError, RayConnectionError
from trpo_tf.normalization import ObservationNormalizer, RewardNormalizer
from trpo_tf.rollout.numpy_actor import NumpyActor
from trpo_tf.rollout.segment import EnvFactory, WorkerSpec

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'trpo_tf[ray]')")

from trpo_tf.rollout.ray_connect import check_cluster, init_ray  # noqa: E402
from trpo_tf.rollout.ray_runner import RayRunner  # noqa: E402

TF_LOG_PREFIXES = ("I0000", "W0000", "E0000", "WARNING: All log messages")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")  # no .ray/auth_token in it


@pytest.fixture(scope="module")
def token(tmp_path_factory) -> Path:
    return write_token(tmp_path_factory.mktemp("token") / "cluster_token")


@pytest.fixture(scope="module")
def clusters(home: Path, token: Path):
    """``ray start`` clusters, started side by side: auth on (one node), auth off (two)."""
    auth_head, open_head = RayNode(home, token), RayNode(home, None)
    nodes = [auth_head, open_head]
    try:
        open_head.wait_ready()
        nodes.append(RayNode(home, None, join=open_head))
        for node in nodes:
            node.wait_ready()
        yield auth_head, open_head
    finally:
        for node in reversed(nodes):
            node.terminate()
        for node in reversed(nodes):
            node.stop()


@pytest.fixture(scope="module")
def auth_cluster(clusters):
    return clusters[0]


@pytest.fixture(scope="module")
def open_cluster(clusters):
    return clusters[1]


@pytest.fixture
def clean_env(home: Path):
    """This test's RAY_AUTH_* changes and Ray connection end with it."""
    with isolated_ray_env(home):
        yield
        ray.shutdown()


def _closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


def _collect_one_batch(address: str, **kwargs) -> dict[int, dict]:
    """Join ``address`` with a RayRunner of 2 workers; the workers' info after one batch."""
    config = experiment_from_dict({"policy": {"hidden": [8]}})
    policy = build_policy(config, 4, gym.spaces.Discrete(2))
    spec = WorkerSpec(EnvFactory("CartPole-v1"), "CartPole-v1", n_envs=1, segment_length=8, seed=0)
    runner = RayRunner(
        spec,
        NumpyActor(policy, seed=0),
        ObservationNormalizer((4,), False),
        RewardNormalizer(2, 0.99, False),
        workers=2,
        max_policy_lag=1,
        address=address,
        on_event=lambda line: None,
        **kwargs,
    )
    try:
        # A batch holds the first segments to arrive: collect until both workers said hello.
        for version in range(1, 6):
            rollout = runner.collect(policy_version=version)
            assert rollout.observations.shape == (8, 2, 4)
            assert np.isfinite(rollout.behavior_log_prob).all()
            if len(runner.worker_info) == 2:
                break
            runner.policy_updated(version + 1)
        return dict(runner.worker_info)
    finally:
        runner.close()


# -- an address that is not a cluster: one line, within runner.connect_timeout_s -------------


def test_refused_and_unresolvable_addresses_fail_at_once(clean_env) -> None:
    port = _closed_port()
    start = time.monotonic()
    with pytest.raises(RayConnectionError) as refused:
        init_ray(f"127.0.0.1:{port}", 2, connect_timeout_s=30)
    assert time.monotonic() - start < 5
    assert str(refused.value).startswith(f"runner.address 127.0.0.1:{port}: nothing accepts")
    assert "connection refused" in str(refused.value) and "ray start --head" in str(refused.value)
    with pytest.raises(RayConnectionError, match="cannot resolve host 'no-such-host.invalid'"):
        init_ray("no-such-host.invalid:6379", 2, connect_timeout_s=10)
    with pytest.raises(RayConnectionError, match="is not local, auto or host:port"):
        init_ray("headnode", 2)
    assert not ray.is_initialized()


def test_a_port_that_is_not_a_ray_gcs_is_an_error_after_connect_timeout(clean_env) -> None:
    with socket.socket() as server:  # accepts connections (the kernel does) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(RayConnectionError, match="no Ray GCS answered within 3 s"):
            check_cluster(address, 3.0, "no token")
        assert time.monotonic() - start < 8


def test_bad_address_through_the_cli_is_one_error_line(tmp_path: Path) -> None:
    experiment = tmp_path / "cartpole.yaml"
    experiment.write_text(
        "name: cartpole\nenv: {id: CartPole-v1, n_envs: 2}\n"
        "trainer: {total_steps: 512, steps_per_iteration: 256}\n"
        "runner: {kind: ray, workers: 2, address: '127.0.0.1:1'}\n"
    )
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled", HOME=str(tmp_path))
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "trpo_tf.cli", "train", str(experiment), "--quiet"]
        + ["--run-dir", str(tmp_path / "run")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - start
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith(TF_LOG_PREFIXES)
    ]
    assert result.returncode == 2, lines
    assert lines == [
        "trpo-tf: error: runner.address 127.0.0.1:1: nothing accepts connections on port 1 of "
        "127.0.0.1 (connection refused); is the Ray head running there (`ray status` on it) "
        "and is that its GCS port (`ray start --head --port`, 6379 by default)?"
    ]
    assert not (tmp_path / "run").exists()
    assert elapsed < 120  # TensorFlow's import and the agent's build; the check is instant


def test_an_unreadable_or_empty_token_file_is_a_config_error(clean_env, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"runner.auth_token_file: cannot read .*missing"):
        init_ray("127.0.0.1:1", 2, auth_token_file=str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match=r"runner.auth_token_file: .*empty; .*ray get-auth-token"):
        init_ray("127.0.0.1:1", 2, auth_token_file=str(tmp_path / "empty"))


# -- token authentication on -------------------------------------------------------------


def test_auth_cluster_without_a_token_says_where_to_get_one(auth_cluster, clean_env) -> None:
    start = time.monotonic()
    with pytest.raises(RayConnectionError) as error:
        init_ray(auth_cluster.address, 2, connect_timeout_s=30)
    assert time.monotonic() - start < 15
    message = str(error.value)
    assert message.startswith(f"runner.address {auth_cluster.address}: the Ray cluster refused no")
    assert "ray get-auth-token" in message and "runner.auth_token_file" in message
    assert "\n" not in message and not ray.is_initialized()


def test_auth_cluster_with_a_wrong_token_names_the_token_file(
    auth_cluster, clean_env, tmp_path: Path
) -> None:
    wrong = write_token(tmp_path / "wrong")
    with pytest.raises(RayConnectionError, match=f"refused the token in {wrong}"):
        init_ray(auth_cluster.address, 2, auth_token_file=str(wrong))


def test_auth_cluster_joined_with_runner_auth_token_file(auth_cluster, token, clean_env) -> None:
    info = _collect_one_batch(auth_cluster.address, auth_token_file=str(token))
    assert sorted(info) == [0, 1]
    assert not any(worker["tensorflow_loaded"] for worker in info.values())


def test_auth_cluster_joined_with_ray_auth_token_and_auto(auth_cluster, token, clean_env) -> None:
    os.environ["RAY_AUTH_TOKEN"] = token.read_text()
    os.environ["RAY_ADDRESS"] = auth_cluster.address  # what `auto` finds first
    assert init_ray("auto", 2, connect_timeout_s=30)
    assert ray.cluster_resources().get("CPU") == 2.0


# -- token authentication off ------------------------------------------------------------


def test_open_cluster_of_two_nodes_joined_without_and_with_a_token(
    open_cluster, token, clean_env
) -> None:
    info = _collect_one_batch(open_cluster.address)
    assert sorted(info) == [0, 1]
    # A token the cluster does not ask for is ignored.
    assert init_ray(open_cluster.address, 2, auth_token_file=str(token))
    assert ray.cluster_resources().get("CPU") == 4.0
    # Actors are spread: one worker on the head's raylet, one on the second node's.
    nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert len(nodes) == 2
    assert {worker["node_id"] for worker in info.values()} == nodes
