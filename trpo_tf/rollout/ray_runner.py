"""The asynchronous runner on Ray: ``runner: {kind: ray, workers: W, address: ...}``.

Same learner logic, staleness rules, step budget and estimator as
:class:`~trpo_tf.rollout.async_runner.AsyncRunner` (see there); the workers are
Ray actors around the same :class:`~trpo_tf.rollout.async_worker.RolloutWorker`
instead of local processes, so they can live on other machines (docs/distributed.md).

``address`` and joining a cluster: :mod:`trpo_tf.rollout.ray_connect`.

Flow control maps onto Ray's ordering of one actor's calls: a credit is a
pending ``run_segment`` call, a new snapshot a ``set_policy`` call queued
behind it. An actor that dies (its ``run_segment`` raises ``RayActorError``) is
killed for good and replaced by a new actor with the current snapshot. Actors
are placed with Ray's ``SPREAD`` strategy, one CPU each, so on a cluster they
spread over the nodes.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from trpo_tf.errors import TrpoTfError
from trpo_tf.rollout.async_runner import AsyncRunner
from trpo_tf.rollout.async_worker import RolloutWorker
from trpo_tf.rollout.numpy_policy import PolicySnapshot
from trpo_tf.rollout.process_pool import Event
from trpo_tf.rollout.ray_connect import DEFAULT_CONNECT_TIMEOUT_S, import_ray, init_ray
from trpo_tf.rollout.segment import Segment, WorkerSpec

# -- the actors -----------------------------------------------------------------------------


class RayRolloutWorker:
    """The Ray actor: a :class:`RolloutWorker` that says where it runs.

    An error building the worker (an env id unknown on that node: a plug-in not
    installed there) is kept and raised by :meth:`info`, so that it reaches the
    learner as the same error class with the node named, instead of as an actor
    that died in its constructor.
    """

    def __init__(
        self, spec: WorkerSpec, index: int, incarnation: int, snapshot: PolicySnapshot
    ) -> None:
        self.error: TrpoTfError | None = None
        self.worker: RolloutWorker | None = None
        try:
            self.worker = RolloutWorker(spec, index, incarnation, snapshot)
        except TrpoTfError as error:
            self.error = type(error)(f"{error} (rollout worker {index} on {_node_name()})")

    def info(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        assert self.worker is not None
        import ray

        info = self.worker.info()
        info["node_id"] = ray.get_runtime_context().get_node_id()
        info["node_ip"] = ray.util.get_node_ip_address()
        return info

    def set_policy(self, snapshot: PolicySnapshot) -> None:
        assert self.worker is not None
        self.worker.set_policy(snapshot)

    def run_segment(self) -> Segment:
        assert self.worker is not None
        return self.worker.run_segment()


def _node_name() -> str:
    try:
        import ray

        return f"Ray node {ray.util.get_node_ip_address()} ({socket.gethostname()})"
    except Exception:  # noqa: BLE001 - only a name for a message
        return f"host {socket.gethostname()}"


class RayWorkerPool:
    """Rollout workers as Ray actors (the transport of :class:`RayRunner`)."""

    def __init__(
        self,
        spec: WorkerSpec,
        address: str,
        workers: int,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        auth_token_file: str | None = None,
    ) -> None:
        ray = import_ray()
        self.ray = ray
        self.spec = spec
        self._owns_ray = init_ray(address, workers + 1, connect_timeout_s, auth_token_file)
        self._actor_class = ray.remote(num_cpus=1, max_restarts=0, scheduling_strategy="SPREAD")(
            RayRolloutWorker
        )
        self.actors: dict[int, Any] = {}
        self._incarnation: dict[int, int] = {}
        self._pending: dict[Any, tuple[int, str]] = {}
        self._shared_snapshot: PolicySnapshot | None = None
        self._shared_ref: Any = None

    def start(self, index: int, snapshot: PolicySnapshot) -> None:
        incarnation = self._incarnation.get(index, -1) + 1
        self._incarnation[index] = incarnation
        actor = self._actor_class.remote(self.spec, index, incarnation, snapshot)
        self.actors[index] = actor
        self._pending[actor.info.remote()] = (index, "ready")

    def send_policy(self, index: int, snapshot: PolicySnapshot) -> None:
        # One copy in the object store for all workers, not one serialization per worker.
        if snapshot is not self._shared_snapshot:
            self._shared_snapshot, self._shared_ref = snapshot, self.ray.put(snapshot)
        self.actors[index].set_policy.remote(self._shared_ref)

    def grant(self, index: int) -> None:
        self._pending[self.actors[index].run_segment.remote()] = (index, "segment")

    def wait(self, timeout: float) -> list[Event]:
        if not self._pending:
            return []
        refs = list(self._pending)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if not ready:
            return []
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        events: list[Event] = []
        dead: set[int] = set()
        for ref in ready:
            index, kind = self._pending.pop(ref)
            if index in dead:
                continue
            try:
                events.append((index, kind, self.ray.get(ref)))
            except self.ray.exceptions.RayActorError as error:
                dead.add(index)
                reason = str(error).strip().splitlines()[0] if str(error).strip() else "died"
                events.append((index, "dead", f"Ray actor died: {reason}"))
            except self.ray.exceptions.RayTaskError as error:
                cause = getattr(error, "cause", None) or error
                events.append((index, "error", (type(cause).__name__, str(cause))))
        return events

    def restart(self, index: int, snapshot: PolicySnapshot) -> None:
        self._pending = {ref: v for ref, v in self._pending.items() if v[0] != index}
        with contextlib.suppress(Exception):
            self.ray.kill(self.actors.pop(index), no_restart=True)
        self.start(index, snapshot)

    def close(self) -> None:
        for actor in self.actors.values():
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)
        self.actors.clear()
        self._pending.clear()
        if self._owns_ray:
            self.ray.shutdown()


class RayRunner(AsyncRunner):
    """:class:`AsyncRunner` whose workers are Ray actors (``address``: see the module).

    Args:
        address: ``local``, ``auto`` or a cluster's ``host:port``.
        connect_timeout_s: how long joining a cluster may take before it is an error.
        auth_token_file: a file holding the cluster's authentication token.
        *args, **kwargs: as :class:`AsyncRunner`.
    """

    kind = "ray"

    def __init__(
        self,
        *args: Any,
        address: str = "local",
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        auth_token_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        import_ray()  # fail before any worker starts
        self.address = address
        self.connect_timeout_s = connect_timeout_s
        self.auth_token_file = auth_token_file
        super().__init__(*args, **kwargs)

    def _make_pool(self) -> RayWorkerPool:
        return RayWorkerPool(
            self.spec, self.address, self.workers, self.connect_timeout_s, self.auth_token_file
        )
