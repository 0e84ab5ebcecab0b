"""Starting or joining Ray for ``runner.kind: ray``: addresses, token authentication,
the checks before joining, and how a local instance is started.

``address``: ``local`` starts a private Ray instance on this machine with
``workers + 1`` CPUs (shut down again when the runner closes); ``auto`` joins
the running cluster this machine belongs to (``RAY_ADDRESS``, else the newest
``ray start`` on this machine); anything else is a cluster's GCS address
``host:port`` (``ray start --head`` prints it; port 6379 unless ``--port`` said
otherwise). Needs the optional extra: ``pip install 'trpo_tf[ray]'``.

Joining a cluster is checked before Ray is asked to, within
``connect_timeout_s`` (Ray itself retries an unreachable address for about 14
minutes): the host must resolve, its port accept a connection, and a Ray GCS
answer there with this machine's authentication token. Each failure is one
:class:`~trpo_tf.errors.RayConnectionError` line naming the address and what to
check.

Token authentication (Ray ≥ 2.5x; on by default for clusters whose head has a
token). Ray turns it on by itself only for ``address: auto``; for every address
this runner uses the token, when one is at hand, in this order:
``auth_token_file`` (``runner.auth_token_file``), ``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``. An explicit ``RAY_AUTH_MODE``
in the environment is respected. A token sent to a cluster without
authentication is ignored by it, so using one whenever it exists is safe.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trpo_tf.errors import ConfigError, RayConnectionError, TrpoTfError

DEFAULT_CONNECT_TIMEOUT_S = 30.0

_PROBE = r"""
import json, sys
try:
    from ray._raylet import GcsClient
except Exception as error:
    print(json.dumps({"status": "unsupported", "message": repr(error)}))
    sys.exit(0)
try:
    client = GcsClient(address=sys.argv[1])
    print(json.dumps({"status": "ok", "cluster_id": client.cluster_id.hex()}))
except Exception as error:
    print(json.dumps({"status": "error", "type": type(error).__name__, "message": str(error)}))
"""
"""Run in a child process: asks the GCS at ``argv[1]`` for the cluster id (the first
call Ray makes when joining), so that a hang can be cut off and an error classified."""


def import_ray() -> Any:
    """The ``ray`` module, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ConfigError(
            "runner.kind ray needs Ray, which is not installed: pip install 'trpo_tf[ray]' "
            "(or use runner.kind: async for local worker processes)"
        ) from error
    return ray


# -- token authentication ------------------------------------------------------------------


def _token_source() -> str | None:
    """Where Ray would read a token from, in its order; None when there is none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return f"RAY_AUTH_TOKEN_PATH={path}" if Path(path).expanduser().is_file() else None
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else None


def _refresh_ray_auth() -> None:
    """Make Ray re-read ``RAY_AUTH_*`` (its config and token are cached per process)."""
    with contextlib.suppress(Exception):  # older Ray: no token authentication to refresh
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


def configure_token_auth(auth_token_file: str | None) -> str:
    """Use Ray's token authentication when a token is at hand; says which token.

    Sets ``RAY_AUTH_MODE=token`` (and ``RAY_AUTH_TOKEN_PATH`` for
    ``auth_token_file``) in this process's environment, as Ray does for its own
    local clusters, unless ``RAY_AUTH_MODE`` is already set.

    Returns:
        A phrase for error messages: "the token from <source>" or "no token".
    """
    if auth_token_file:
        path = Path(auth_token_file).expanduser()
        try:
            token = path.read_text().strip()
        except OSError as error:
            raise ConfigError(
                f"runner.auth_token_file: cannot read {path} ({error.strerror or error}); "
                "it should hold the cluster's token (`ray get-auth-token` on the head node "
                "prints it)"
            ) from None
        if not token:
            raise ConfigError(
                f"runner.auth_token_file: {path} is empty; it should hold the cluster's token "
                "(`ray get-auth-token` on the head node prints it)"
            )
        os.environ.pop("RAY_AUTH_TOKEN", None)  # Ray reads it before the file
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
        os.environ["RAY_AUTH_MODE"] = "token"
        _refresh_ray_auth()
        return f"the token in {path} (runner.auth_token_file)"
    mode = os.environ.get("RAY_AUTH_MODE")
    source = _token_source()
    if mode is not None and mode.lower() != "token":
        return f"no token (RAY_AUTH_MODE={mode})"
    if source is None:
        return "no token (none in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
    if mode is None:
        os.environ["RAY_AUTH_MODE"] = "token"
        _refresh_ray_auth()
    return f"the token from {source}"


# -- reaching a cluster ---------------------------------------------------------------------


def _host_port(address: str) -> tuple[str, int]:
    """``host:port`` (also ``ray://host:port``, ``[v6]:port``) split into its parts."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, colon, port = rest.rpartition(":")
    if not colon or not port.isdigit() or not host:
        raise RayConnectionError(
            f"runner.address '{address}' is not local, auto or host:port (a Ray cluster's GCS "
            "address, e.g. 10.0.0.5:6379, as `ray start --head` prints it)"
        )
    return host.strip("[]"), int(port)


def resolve_address(address: str) -> str:
    """The ``host:port`` that ``address`` (``auto`` or an address) stands for."""
    if address != "auto":
        return address
    import_ray()
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # a Ray without it: let ray.init find the cluster
        return address
    try:
        found = canonicalize_bootstrap_address("auto")
    except (ConnectionError, ValueError, RuntimeError):
        found = None
    if not found:
        raise RayConnectionError(
            "runner.address auto: no running Ray cluster found on this machine (none in "
            "RAY_ADDRESS, none started with `ray start`); start one with `ray start --head`, "
            "name its address in runner.address, or use runner.address: local"
        )
    return found


def _reachable(address: str, host: str, port: int, timeout: float) -> None:
    """RayConnectionError unless ``host:port`` accepts a TCP connection within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=max(timeout, 0.1)):
            return
    except socket.gaierror as error:
        problem = f"cannot resolve host '{host}' ({error.strerror or error})"
        check = "check the host name, or use the head node's IP address"
    except ConnectionRefusedError:
        problem = f"nothing accepts connections on port {port} of {host} (connection refused)"
        check = (
            "is the Ray head running there (`ray status` on it) and is that its GCS port "
            "(`ray start --head --port`, 6379 by default)?"
        )
    except TimeoutError:
        problem = f"no answer from {host}:{port} within {timeout:.0f} s (runner.connect_timeout_s)"
        check = "is the host up and reachable from here, and the port open in its firewall?"
    except OSError as error:
        problem = f"cannot reach {host}:{port} ({error.strerror or error})"
        check = "is the host up and reachable from here (route, VPN, firewall)?"
    raise RayConnectionError(f"runner.address {address}: {problem}; {check}")


def _probe_gcs(address: str, gcs: str, timeout: float, token: str) -> None:
    """RayConnectionError unless a Ray GCS answers at ``gcs`` within ``timeout`` seconds."""
    env = dict(os.environ)
    # The child's own wait, shorter than ours so that it can say why it gave up.
    env["RAY_py_gcs_connect_timeout_s"] = str(max(1, math.floor(timeout) - 1))
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, gcs],
            env=env,
            capture_output=True,
            text=True,
            timeout=max(timeout, 1.0),
        )
        reply = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        reply = {"status": "error", "type": "TimeoutExpired", "message": ""}
    except (IndexError, ValueError, OSError):
        return  # the probe itself failed: leave the verdict to ray.init
    status, kind = reply.get("status"), reply.get("type", "")
    message = reply.get("message", "")
    if status != "error":
        return
    refused = ("InvalidAuthToken", "Unauthenticated")
    if kind == "AuthenticationError" or any(word in message for word in refused):
        raise RayConnectionError(
            f"runner.address {address}: the Ray cluster refused {token}: it requires token "
            "authentication with its own token. Print it on the head node with "
            "`ray get-auth-token`, save it in a file and name that file in "
            "runner.auth_token_file (or export RAY_AUTH_TOKEN=...)"
        )
    raise RayConnectionError(
        f"runner.address {address}: port {gcs.rpartition(':')[2]} accepts connections but no "
        f"Ray GCS answered within {timeout:.0f} s (runner.connect_timeout_s); is it the head "
        "node's GCS port (`ray start --head --port`, 6379 by default), not the dashboard "
        "(8265) or Ray Client (10001)? Do both sides run the same Ray version?"
    )


def check_cluster(address: str, timeout_s: float, token: str) -> str:
    """Check, within ``timeout_s``, that ``address`` is a Ray cluster that lets us in.

    Returns:
        The ``host:port`` to pass to ``ray.init``.
    """
    deadline = time.monotonic() + timeout_s
    gcs = resolve_address(address)
    host, port = _host_port(gcs)
    _reachable(address, host, port, deadline - time.monotonic())
    if not gcs.startswith("ray://"):  # Ray Client speaks its own protocol
        _probe_gcs(address, gcs, max(deadline - time.monotonic(), 1.0), token)
    return gcs


def init_ray(
    address: str,
    num_cpus: int,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    auth_token_file: str | None = None,
) -> bool:
    """Start or join Ray unless it already is; returns whether this call did.

    ``local`` starts a private instance with ``num_cpus`` CPUs; other addresses
    are checked (:func:`check_cluster`) and joined. Actors see this process's
    ``sys.path`` (as multiprocessing's spawned workers do), so env factories
    defined in any importable module work on this machine.

    Raises:
        RayConnectionError: the cluster cannot be reached or joined.
        ConfigError: Ray is not installed, or the token file is unreadable.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "ignore_reinit_error": True,
    }
    if address == "local":
        kwargs.update(address="local", num_cpus=num_cpus)
    else:
        token = configure_token_auth(auth_token_file)
        kwargs["address"] = check_cluster(address, connect_timeout_s, token)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    own_session = (
        _local_processes_in_own_session() if address == "local" else contextlib.nullcontext()
    )
    try:
        with _stop_handlers_kept(), own_session:
            ray.init(**kwargs)
    except TrpoTfError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever Ray raises becomes one line
        lines = str(error).strip().splitlines()
        what = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        where = f"runner.address {address}" if address != "local" else "a local Ray instance"
        verb = "could not start" if address == "local" else "could not join the Ray cluster"
        raise RayConnectionError(f"{where}: {verb} ({what})") from None
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return True


@contextlib.contextmanager
def _stop_handlers_kept() -> Iterator[None]:
    """Keep this process's SIGINT/SIGTERM/SIGHUP handlers across ``ray.init``.

    Ray's core worker installs native handlers that end the driver at once on
    SIGTERM (exit 1, no checkpoint); training's own handlers
    (:mod:`trpo_tf.run.signals`) must stay the ones that decide how a run stops.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {signum: signal.getsignal(signum) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in before.items():
            if handler is not None:
                signal.signal(signum, handler)


@contextlib.contextmanager
def _local_processes_in_own_session() -> Iterator[None]:
    """Start a local instance's processes (GCS, raylet, and so its workers) in a new session.

    A SIGTERM to the learner's process group (SLURM's, ``kill -- -PGID``) then reaches
    the learner only, which checkpoints its iteration and shuts Ray down; in the same
    group the raylet would die with it, and Ray's core worker would end the learner
    (exit 1) before training's handler ran. Ray does the same on Windows (a new process
    group) whenever the kernel ends its processes with their parent, and so does this:
    only then (Linux's parent-death signal), since otherwise Ray's reaper cleans up by
    process group. A Ray without the hook used here starts its processes as before.
    """
    try:
        from ray._private import services, utils
    except ImportError:
        yield
        return
    original = getattr(services, "ConsolePopen", None)
    fate_shared = getattr(utils, "detect_fate_sharing_support", lambda: False)()
    if original is None or not fate_shared or sys.platform == "win32":
        yield
        return

    class OwnSessionPopen(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnSessionPopen
    try:
        yield
    finally:
        services.ConsolePopen = original
