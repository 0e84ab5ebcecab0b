"""The asynchronous runner on Ray: ``runner: {kind: ray, workers: W, address: ...}``.

Same learner logic, staleness rules and estimator as
:class:`~trpo_tf.rollout.async_runner.AsyncRunner` (see there); the workers are
Ray actors of the same :class:`~trpo_tf.rollout.async_worker.RolloutWorker`
class instead of local processes, so they can live on other machines.

``address``: ``local`` starts a private Ray instance on this machine with
``workers + 1`` CPUs (shut down again when the runner closes); ``auto`` joins
the running cluster this machine belongs to; anything else is passed to
``ray.init(address=...)`` (e.g. ``ray://head:10001``). Needs the optional
extra: ``pip install 'trpo_tf[ray]'``.

Flow control maps onto Ray's ordering of one actor's calls: a credit is a
pending ``run_segment`` call, a new snapshot a ``set_policy`` call queued
behind it. An actor that dies (its ``run_segment`` raises ``RayActorError``) is
killed for good and replaced by a new actor with the current snapshot.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from trpo_tf.errors import ConfigError
from trpo_tf.rollout.async_runner import AsyncRunner
from trpo_tf.rollout.async_worker import RolloutWorker, WorkerSpec
from trpo_tf.rollout.numpy_policy import PolicySnapshot
from trpo_tf.rollout.process_pool import Event


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


def init_ray(address: str, num_cpus: int) -> bool:
    """Start or join Ray unless it already is; returns whether this call started it.

    ``local`` starts a private instance with ``num_cpus`` CPUs; other addresses
    are passed to ``ray.init``. Actors see this process's ``sys.path`` (as
    multiprocessing's spawned workers do), so env factories defined in any
    importable module work.
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
        kwargs["address"] = address
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        ray.init(**kwargs)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return True


class RayWorkerPool:
    """Rollout workers as Ray actors (the transport of :class:`RayRunner`)."""

    def __init__(self, spec: WorkerSpec, address: str, workers: int) -> None:
        ray = import_ray()
        self.ray = ray
        self.spec = spec
        self._owns_ray = init_ray(address, num_cpus=workers + 1)
        self._actor_class = ray.remote(num_cpus=1, max_restarts=0)(RolloutWorker)
        self.actors: dict[int, Any] = {}
        self._incarnation: dict[int, int] = {}
        self._pending: dict[Any, tuple[int, str]] = {}

    def start(self, index: int, snapshot: PolicySnapshot) -> None:
        incarnation = self._incarnation.get(index, -1) + 1
        self._incarnation[index] = incarnation
        actor = self._actor_class.remote(self.spec, index, incarnation, snapshot)
        self.actors[index] = actor
        self._pending[actor.info.remote()] = (index, "ready")

    def send_policy(self, index: int, snapshot: PolicySnapshot) -> None:
        self.actors[index].set_policy.remote(snapshot)

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
    """:class:`AsyncRunner` whose workers are Ray actors (``address``: see the module)."""

    kind = "ray"

    def __init__(self, *args: Any, address: str = "local", **kwargs: Any) -> None:
        import_ray()  # fail before any worker starts
        self.address = address
        super().__init__(*args, **kwargs)

    def _make_pool(self) -> RayWorkerPool:
        return RayWorkerPool(self.spec, self.address, self.workers)
