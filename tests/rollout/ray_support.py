"""Ray for the tests: one local instance per module, ``ray start --head`` clusters.

Every helper leaves the process as it found it: ``RAY_AUTH_*``/``RAY_ADDRESS``
(Ray sets ``RAY_AUTH_MODE=token`` in the process that starts a local instance),
Ray's cached authentication config, and ``~/.ray/auth_token``, which a local
instance would create when no token is configured (here it gets one in a
temporary file instead).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
RAY_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def ray_or_skip() -> Any:
    return pytest.importorskip("ray", reason="ray is not installed (pip install 'trpo_tf[ray]')")


# Ports Ray takes by default whatever else is configured (GCS, dashboard, client
# server, dashboard agent HTTP, runtime env agent): an OS-chosen port that lands on
# one of them makes ``ray start`` refuse ("port ... used by other components").
RAY_DEFAULT_PORTS = frozenset({6379, 8265, 10001, 52365})
_issued_ports: set[int] = set()


def free_port() -> int:
    """A port free now, none of Ray's defaults, and not handed out before here."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in RAY_DEFAULT_PORTS and port not in _issued_ports:
            _issued_ports.add(port)
            return port


def write_token(path: Path) -> Path:
    path.write_text(secrets.token_hex(16))
    return path


@contextlib.contextmanager
def isolated_ray_env(home: Path | None = None) -> Iterator[None]:
    """No ``RAY_AUTH_*``/``RAY_ADDRESS`` inside (``HOME=home`` if given); restored after."""
    from trpo_tf.rollout.ray_connect import _refresh_ray_auth

    names = (*RAY_VARS, "HOME")
    saved = {name: os.environ.get(name) for name in names}
    for name in RAY_VARS:
        os.environ.pop(name, None)
    if home is not None:
        os.environ["HOME"] = str(home)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _refresh_ray_auth()


@contextlib.contextmanager
def local_ray(num_cpus: int, setup_hook: str | None = None) -> Iterator[Any]:
    """A private local Ray instance whose workers can import this directory's modules."""
    ray = ray_or_skip()
    tmp = Path(tempfile.mkdtemp(prefix="trpo-ray-"))
    with isolated_ray_env():
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(write_token(tmp / "token"))
        saved_path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            runtime_env = {"worker_process_setup_hook": setup_hook} if setup_hook else None
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env=runtime_env,
            )
        finally:
            if saved_path is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved_path
        try:
            yield ray
        finally:
            ray.shutdown()
            shutil.rmtree(tmp, ignore_errors=True)


class RayNode:
    """``ray start --block`` in a process group of its own, on free ports.

    A head (``join=None``) or a second node joining the head ``join`` (a raylet
    of its own on this machine: Ray's "node" is a raylet, not a host). Starting
    returns at once: :meth:`wait_ready` waits for it (start several first, then
    wait, and they come up side by side).

    Args:
        home: HOME of the node (its ``~/.ray``), and of this process while joined.
        token: the cluster's token file (authentication on), or None (off).
        join: the head to join, or None to be a head.
    """

    def __init__(self, home: Path, token: Path | None, join: RayNode | None = None) -> None:
        self.port = join.port if join else free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Unix socket paths must stay short: a temp dir of its own directly under /tmp.
        self.temp_dir = tempfile.mkdtemp(prefix="trh", dir="/tmp")
        env = dict(os.environ)
        for name in RAY_VARS:
            env.pop(name, None)
        env.update(HOME=str(home), RAY_AUTH_MODE="token" if token else "disabled")
        if token is not None:
            env["RAY_AUTH_TOKEN_PATH"] = str(token)
        ray_cli = Path(sys.executable).with_name("ray")
        if join is None:
            role = [
                "--head",
                f"--port={self.port}",
                f"--ray-client-server-port={free_port()}",
                "--include-dashboard=false",
                f"--temp-dir={self.temp_dir}",
            ]
        else:
            role = [f"--address={join.address}"]
        # Every node on this machine gets its own agent port (the default is shared).
        role.append(f"--dashboard-agent-listen-port={free_port()}")
        self.log = open(Path(self.temp_dir) / "node.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(ray_cli), "start", "--block", "--num-cpus=2", "--disable-usage-stats", *role],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        log = Path(self.temp_dir) / "node.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited: {log.read_text()[-2000:]}")
            if "Ray runtime started" in log.read_text():
                return
            time.sleep(0.2)
        raise RuntimeError(f"ray start not up in {timeout} s: {log.read_text()[-2000:]}")

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # `ray start --block` stops its node on SIGTERM

    def stop(self) -> None:
        self.terminate()
        if self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # stragglers of the group we started
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
