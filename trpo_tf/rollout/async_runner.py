"""Asynchronous rollouts: worker processes keep stepping while the learner updates.

``runner: {kind: async, workers: W, max_policy_lag: K}``. Each of the ``W``
workers (:mod:`trpo_tf.rollout.async_worker`, a process that never imports
TensorFlow) owns ``k = env.n_envs / W`` env copies and a numpy snapshot of the
policy. It steps continuously in segments of ``T = steps_per_iteration /
n_envs`` steps, and every sample carries β's log-probability, distribution
parameters and the version of the snapshot that acted. :meth:`AsyncRunner.collect`
takes the first ``W`` segments that arrive and concatenates them along the env
axis, so a batch has the synchronous runner's shape ``[T, n_envs]``.

Staleness and flow control. The learner publishes a new snapshot after every
update (:meth:`AsyncRunner.policy_updated`). A worker may run one segment ahead
(``prefetch``, on when ``K ≥ 1``): it starts its next segment as soon as the
last one was received, with the snapshot it has, so while the learner updates
π_old → π_new the workers keep stepping with π_old; those samples reach the next
batch one version old. Without prefetch a worker waits for the new snapshot.
Each worker has at most one segment *outstanding* (stepping, or arrived and held
for the next batch). The bookkeeping (grants, in-flight segments, the hold rule
below, the step budget) is :class:`~trpo_tf.rollout.segment_ledger.SegmentLedger`.

Stale data is avoided by waiting rather than dropped. A batch takes the
segments as they arrive, except that a segment still fresh enough for the next
batch is *held* for it when taking it now would leave no room for a segment in
flight that would be too old by then (a slow worker's): the learner waits for
that one instead. So with ``K ≥ 1`` no segment is dropped as stale; a segment
whose version is older than ``policy_version − K`` (``K = 0`` with prefetch, or
one collected before a restore) is still **dropped** (not down-weighted): it
is counted in ``Rollout.dropped_steps`` and its env steps in
``total_env_steps``; its observations and rewards still feed the running
normalization statistics, which describe the environment, not the policy.

The step budget (``step_budget``, the experiment's ``trainer.total_steps``)
bounds the env steps collected, dropped ones included, not just those trained
on: no segment is requested that would take ``total_env_steps`` past it, nor
one that no remaining batch needs (no prefetch after the last batch). When
dropped segments have used up the room the budget had, a batch that cannot be
filled raises :class:`StepBudgetSpent` and the run ends one or more iterations
early.

The estimator. With samples (s, a) ~ d^β·β, the learner maximizes

    L(θ) = E_{s,a ~ β}[ π_θ(a|s) / β(a|s) · Â(s, a) ]   s.t.  E_s[KL(π_old(·|s) ‖ π_θ(·|s))] ≤ δ

* The ratio uses β's log-probability as stored at collection time, so for a
  fixed advantage function the surrogate is an unbiased importance-sampling
  estimate of E_{a~π_θ}[A] on the states β visited (``trainer.behavior_correction:
  false`` replaces β by π_old, an ablation that is biased under staleness).
* The trust region is measured against π_old (the learner's current policy)
  on the batch's states, not against β: it bounds the step, whatever collected
  the data.
* The states come from β's state distribution d^β rather than d^{π_old}: the
  usual TRPO approximation, slightly larger when β lags.
* Advantages: GAE with the current V uses β's rewards and actions along the
  trajectory as if π_old had chosen them, so it estimates A^β, not A^{π_old};
  the bias grows with the lag (it is zero at lag 0). The optional V-trace
  estimator (the ``trpo-tf-vtrace`` plug-in, ``advantage.estimator: vtrace``)
  corrects the multi-step part with truncated ratios min(c̄, π_old/β), trading
  the bias for bounded variance.
* Observations are stored normalized with β's copy of the statistics (what β
  saw); π_old's log-probabilities are evaluated on those same inputs.

Recurrent policies (``lstm``, ``gru``). Workers act with the numpy twin of the
network (:class:`~trpo_tf.rollout.numpy_actor.NumpyRecurrentActor` snapshots) and
carry each env's state across segments and snapshots, as the synchronous sampler
carries it across batches; every segment records ``episode_starts`` and β's state
before each step, and a batch holds them in ``Rollout.episode_starts`` /
``Rollout.policy_states`` ``[T, n_envs, ...]`` like every other field. Each column
of a batch is one env's ``T`` consecutive steps from one segment, and
``trainer.bptt_length`` divides ``T``, so no training sequence spans two segments.
The learner recomputes log π_old over those sequences from the recorded states.

Faults. A worker's env that raises is rebuilt inside the worker (see
:mod:`~trpo_tf.rollout.async_worker`); one that keeps raising before it finishes
an episode ends the run with an :class:`~trpo_tf.errors.EnvRuntimeError`. A
worker process that dies is detected by the learner (its process sentinel fires
or its pipe reaches EOF), restarted with the current snapshot, and the segment
it was collecting is counted as dropped; a worker that dies ``max_restarts + 1``
times without delivering a segment ends the run with a
:class:`~trpo_tf.errors.RolloutWorkerError`. Each restart and env error is
reported through ``on_event`` (a line on stderr by default) as it happens.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from trpo_tf import errors
from trpo_tf.errors import ConfigError, NormalizerOverflowError, RolloutWorkerError
from trpo_tf.normalization import ObservationNormalizer, RewardNormalizer
from trpo_tf.rollout.env_checks import in_env
from trpo_tf.rollout.env_error_log import EnvErrorLog
from trpo_tf.rollout.numpy_policy import PolicySnapshot
from trpo_tf.rollout.process_pool import Event, ProcessWorkerPool
from trpo_tf.rollout.segment import Segment, WorkerSpec
from trpo_tf.rollout.segment_batch import BatchFill, assemble_rollout, segment_rewards
from trpo_tf.rollout.segment_ledger import SegmentLedger
from trpo_tf.types import Rollout


def _stderr_event(message: str) -> None:
    print(f"[trpo-tf rollout] {message}", file=sys.stderr, flush=True)


class StepBudgetSpent(Exception):
    """The step budget cannot fill another batch (dropped segments used its room).

    Not an error: the learner ends the run after the iterations it completed.
    """


class AsyncRunner:
    """Collects batches from ``workers`` rollout workers (see the module docstring).

    Args:
        spec: how each worker builds its envs (``spec.n_envs`` per worker) and
            the segment length ``T``.
        actor: the learner's :class:`~trpo_tf.rollout.numpy_actor.NumpyActor`
            (anything with ``snapshot()``); synced by the learner before
            :meth:`policy_updated`.
        observation_normalizer: the learner's; updated from the workers' raw
            observations, copied into every snapshot.
        reward_normalizer: the learner's, with ``n_envs = workers · spec.n_envs``
            (worker ``w`` owns columns ``[w·k, (w+1)·k)`` of its return state).
        workers: number of worker processes ``W``.
        max_policy_lag: ``K``; segments older than ``policy_version − K`` are dropped.
        policy_version: version of the actor's current weights (the first
            ``collect``'s π_old).
        prefetch: workers run one segment ahead (default: ``K ≥ 1``).
        on_event: receives one line per worker restart or env error (stderr if None).
        max_restarts: restarts of one worker without a segment in between before
            the run is stopped.
        stall_timeout_s: seconds without any worker event before giving up.
        start_method: multiprocessing start method (forkserver or spawn).
        step_budget: most env steps to collect (``trainer.total_steps``); it also
            sets how many batches will be asked for (whole batches within the
            budget). None: no limit.

    Workers are started here; they step once the first :meth:`collect` (or
    :meth:`policy_updated`) hands them the policy to act with, so a restored run
    does not collect with the weights it had before the restore.
    """

    kind = "async"

    def __init__(
        self,
        spec: WorkerSpec,
        actor: Any,
        observation_normalizer: ObservationNormalizer,
        reward_normalizer: RewardNormalizer,
        workers: int,
        max_policy_lag: int,
        policy_version: int = 1,
        prefetch: bool | None = None,
        on_event: Callable[[str], None] | None = None,
        max_restarts: int = 5,
        stall_timeout_s: float = 600.0,
        start_method: str | None = None,
        step_budget: int | None = None,
    ) -> None:
        if not hasattr(actor, "snapshot"):
            raise ConfigError(
                f"runner.kind {self.kind} needs the numpy policy mirror (a distribution with "
                "numpy_sampler and a Dense-only network); use runner.kind: sync"
            )
        self.spec = spec
        self.actor = actor
        self.obs_norm = observation_normalizer
        self.reward_norm = reward_normalizer
        self.workers = int(workers)
        self.max_policy_lag = int(max_policy_lag)
        self.prefetch = self.max_policy_lag >= 1 if prefetch is None else bool(prefetch)
        self.on_event = on_event or _stderr_event
        self.max_restarts = max_restarts
        self.stall_timeout_s = stall_timeout_s
        self.start_method = start_method
        self.n_envs = self.workers * spec.n_envs
        self.segment_steps = spec.segment_length * spec.n_envs
        self.step_budget = None if step_budget is None else int(step_budget)
        self.batches = 0  # batches returned by collect (restored from checkpoints)
        self.total_env_steps = 0
        self.dropped_steps_total = 0
        self.worker_restarts = 0
        self.nonfinite_replaced = 0
        self.events: deque[str] = deque(maxlen=200)
        self.worker_info: dict[int, dict[str, Any]] = {}
        self._ledger = SegmentLedger(self.workers, self.segment_steps, self.step_budget)
        self._filling = False  # inside collect, until its batch is complete
        self._started = False
        self._discard_next = dict.fromkeys(range(self.workers), 0)
        self._restarts_in_a_row = dict.fromkeys(range(self.workers), 0)
        self._env_error_log = EnvErrorLog(self._log)
        self._backlog: deque[Event] = deque()
        self._closed = False
        self._republish = False
        self._snapshot = self._take_snapshot(policy_version)
        if self.reward_norm.returns.shape != (self.n_envs,):
            raise ValueError(
                f"reward_normalizer has {self.reward_norm.returns.shape[0]} envs, the workers "
                f"{self.n_envs}"
            )
        self.pool = self._make_pool()
        try:
            for index in range(self.workers):
                self.pool.start(index, self._snapshot)
        except BaseException:
            self.close()
            raise

    # -- transport hooks (RayRunner overrides) ---------------------------------

    def _make_pool(self) -> Any:
        return ProcessWorkerPool(self.spec, self.start_method)

    # -- learner side -------------------------------------------------------------

    def _take_snapshot(self, version: int) -> PolicySnapshot:
        normalizer = self.obs_norm if self.obs_norm.enabled else None
        return self.actor.snapshot().with_version(version, normalizer)

    def _log(self, message: str) -> None:
        self.events.append(message)
        self.on_event(message)

    # -- flow control (bookkeeping in SegmentLedger) --------------------------------

    def _may_grant(self) -> bool:
        return self._ledger.may_grant(self.total_env_steps, self.batches)

    def _grant(self, index: int) -> None:
        self._ledger.granted(index, self._snapshot.version)
        self.pool.grant(index)

    def _offer(self, index: int, speculative: bool) -> None:
        """Grant worker ``index`` a segment if it has none outstanding and one is wanted.

        ``speculative``: for a later batch (prefetch); otherwise only when a batch
        is being filled (inside :meth:`collect`) and still lacks segments. Between
        batches, without prefetch, nothing is granted: the next grant comes with
        the next snapshot (:meth:`_publish`), so that a worker never starts a
        segment with the snapshot the next batch no longer accepts.
        """
        if self._ledger.has_outstanding(index) or not self._may_grant():
            return
        batch_lacks = self._filling and self._ledger.outstanding() < self.workers
        if (speculative and self.prefetch) or batch_lacks:
            self._grant(index)

    def _publish(self, version: int) -> None:
        self._snapshot = self._take_snapshot(version)
        self._started = True
        for index in range(self.workers):
            self.pool.send_policy(index, self._snapshot)
        for index in range(self.workers):
            # Workers that wait (no prefetch, or nothing outstanding) act with it now.
            if not self._ledger.has_outstanding(index) and self._may_grant():
                self._grant(index)

    @property
    def policy_version(self) -> int:
        """Version of the newest snapshot sent to the workers."""
        return self._snapshot.version

    def policy_updated(self, policy_version: int) -> None:
        """Send the workers a snapshot of the (synced) actor labelled ``policy_version``."""
        self._publish(policy_version)

    def _next_events(self, deadline: float) -> list[Event]:
        if self._backlog:
            events = list(self._backlog)
            self._backlog.clear()
            return events
        while True:
            events = self.pool.wait(timeout=1.0)
            if events:
                return events
            if time.monotonic() > deadline:
                self.close()
                raise RolloutWorkerError(
                    f"rollout workers stepping environment '{self.spec.env_name}' sent "
                    f"nothing for {self.stall_timeout_s:.0f} s (segments in flight per worker: "
                    f"{self._ledger.in_flight}); is the environment hanging? Try it with "
                    "runner.kind: sync"
                )

    def _worker_died(self, index: int, reason: str) -> int:
        """Restart worker ``index``; returns the steps lost with it."""
        self._restarts_in_a_row[index] += 1
        last_error = self._env_error_log.last_error.get(index)
        if self._restarts_in_a_row[index] > self.max_restarts:
            self.close()
            env_error = f"; its last env error: {last_error}" if last_error else ""
            raise RolloutWorkerError(
                f"rollout worker {index} of {self.workers} stepping environment "
                f"'{self.spec.env_name}' died {self._restarts_in_a_row[index]} times in a row "
                f"without delivering a segment (last: {reason}{env_error}; "
                f"{self.worker_restarts} worker restarts in this run); the environment may "
                "crash its process (native code, memory): try it with runner.kind: sync"
            )
        self.worker_restarts += 1
        lost = self._ledger.lost(index)
        self._discard_next[index] = 0
        self.pool.restart(index, self._snapshot)
        # Its envs start fresh episodes: forget their discounted returns.
        k = self.spec.n_envs
        self.reward_norm.returns[index * k : (index + 1) * k] = 0.0
        self._log(
            f"worker {index} died ({reason}); restarted with policy version "
            f"{self._snapshot.version}; {lost} in-flight env steps dropped"
            + (f" (its last env error: {last_error})" if last_error else "")
        )
        self.total_env_steps += lost
        return lost

    def collect(self, policy_version: int) -> Rollout:
        """The next ``W`` fresh-enough segments as one ``[T, n_envs]`` batch.

        ``policy_version`` is π_old's version; when the workers were not yet sent
        that version (the first call, or the first after a restore) a snapshot is
        published first.

        Raises:
            StepBudgetSpent: the step budget has no room left to fill this batch.
        """
        if not self._started or self._republish or self._snapshot.version != policy_version:
            self._republish = False
            self._publish(policy_version)
        fill = BatchFill(policy_version, self.max_policy_lag, self.stall_timeout_s)
        self._filling = True
        fill.dropped += self._ledger.take_held(fill.oldest, fill.keep_from)
        for index in range(self.workers):  # a worker whose held segment went in
            self._offer(index, speculative=True)
        while not self._ledger.batch_full():
            if not self._backlog and self._ledger.in_flight_total() == 0:
                self._check_budget(policy_version, fill.dropped)
            events = self._next_events(fill.deadline)
            while events and not self._ledger.batch_full():
                self._handle(events.pop(0), fill)
            self._backlog.extend(events)
        self._env_error_log.end_batch()
        self.dropped_steps_total += fill.dropped
        self.batches += 1
        accepted = self._ledger.take_batch()
        self._filling = False  # the batch is complete: only prefetch may grant now
        rollout = assemble_rollout(
            accepted,
            dropped=fill.dropped,
            episode_returns=fill.episode_returns,
            episode_lengths=fill.episode_lengths,
            nonfinite_replaced=self.nonfinite_replaced,
        )
        for index in range(self.workers):  # prefetch offers the need limit refused mid-batch
            self._offer(index, speculative=True)
        return rollout

    def _handle(self, event: Event, fill: BatchFill) -> None:
        """One worker event while ``fill``'s batch is being collected."""
        index, kind, payload = event
        if kind == "ready":
            self.worker_info[index] = payload
            return
        if kind == "env_error":
            self._env_error_log.record(index, payload)
            return
        if kind == "error":
            self.close()
            name, message = payload
            raise getattr(errors, name, RuntimeError)(message)
        if kind == "dead":
            fill.dropped += self._worker_died(index, str(payload))
        else:
            self._segment_arrived(index, payload, fill)
        self._offer(index, speculative=True)
        fill.restart_clock()
        if self._ledger.held:
            # A slot kept free for a segment that died or came too old may now go to a
            # held one.
            fill.dropped += self._ledger.take_held(fill.oldest, fill.keep_from)

    def _segment_arrived(self, index: int, segment: Segment, fill: BatchFill) -> None:
        """Count ``segment``, fold it into the normalizers and place it (or drop it)."""
        self._env_error_log.last_error.pop(index, None)  # a death now is a new story
        self._ledger.arrived(index)
        self._restarts_in_a_row[index] = 0
        self.total_env_steps += segment.env_steps
        fill.dropped += segment.discarded_steps
        self.nonfinite_replaced += segment.nonfinite_replaced
        for message in segment.env_errors:
            self._env_error_log.record(index, message)
        rewards = self._normalize(segment)
        fill.episode_returns.append(segment.episode_returns)
        fill.episode_lengths.append(segment.episode_lengths)
        if self._discard_next[index] > 0:  # collected before a restore
            self._discard_next[index] -= 1
            fill.dropped += segment.num_steps
        else:
            fill.dropped += self._ledger.place(segment, rewards, fill.oldest, fill.keep_from)

    def _check_budget(self, policy_version: int, dropped: int) -> None:
        """Grant what this batch still lacks; :class:`StepBudgetSpent` if none may be."""
        for index in range(self.workers):
            self._offer(index, speculative=False)
        if self._ledger.in_flight_total():
            return
        # The segments already taken for this batch (or held for the next) go unused.
        self.dropped_steps_total += dropped + self._ledger.discard_arrived()
        self.close()
        raise StepBudgetSpent(
            f"the step budget trainer.total_steps={self.step_budget:,} has no room left for "
            f"batch {policy_version} ({self.total_env_steps:,} env steps collected, "
            f"{self.dropped_steps_total:,} of them dropped or unused); the run ends after "
            f"{policy_version - 1} iterations"
        )

    def _normalize(self, segment: Segment) -> np.ndarray:
        """Fold ``segment`` into the normalizers; its learning rewards ``[T, k]``."""
        try:
            if self.obs_norm.enabled:
                raw = segment.raw_observations
                self.obs_norm.update(raw.reshape(-1, raw.shape[-1]))
            return segment_rewards(self.reward_norm, segment, self.spec.n_envs)
        except NormalizerOverflowError as error:
            self.close()
            raise in_env(error, self.spec.env_name, self.total_env_steps) from None

    @property
    def env_errors(self) -> int:
        """Env failures reported by the workers in this run (restored from checkpoints)."""
        return self._env_error_log.count

    def state(self) -> dict:
        """Counters only: env state lives in the worker processes and is not saved."""
        return {
            "total_env_steps": self.total_env_steps,
            "dropped_steps_total": self.dropped_steps_total,
            "worker_restarts": self.worker_restarts,
            "env_errors": self.env_errors,
            "nonfinite_replaced": self.nonfinite_replaced,
            "policy_version": self._snapshot.version,
            "batches": self.batches,
        }

    def load_state(self, state: dict) -> bool:
        """Restore the counters; returns False (workers' episodes restart fresh).

        Segments already in flight were collected with the weights this runner
        had before the restore, so they are dropped when they arrive.
        """
        self.total_env_steps = int(state["total_env_steps"])
        self.dropped_steps_total = int(state["dropped_steps_total"])
        self.worker_restarts = int(state["worker_restarts"])
        self._env_error_log.count = int(state["env_errors"])
        self.nonfinite_replaced = int(state["nonfinite_replaced"])
        # Checkpoints from before the step budget counted batches: one per version.
        self.batches = int(state.get("batches", int(state["policy_version"]) - 1))
        for index in range(self.workers):
            self._discard_next[index] = self._ledger.in_flight[index]
        self._ledger.forget_held()
        self._republish = True
        return False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.pool.close()
