"""Imported once, in the forkserver that starts rollout worker processes only.

Python's forkserver ignores SIGINT but keeps the default action for SIGTERM and
SIGHUP, so a signal sent to the whole process group (SLURM's ``scancel``, a
closed terminal, ``kill -- -PGID``) kills it while the learner is still finishing
its iteration: every worker's sentinel then reads as dead, and restarting one
fails with ``ConnectionRefusedError``. The learner decides when the pool stops
(after a checkpoint), so the server ignores both signals, as the workers do; it
still exits when the learner does (its alive pipe closes).

Never import this module anywhere else: importing it changes the importing
process's signal handlers.
"""

from __future__ import annotations

import signal

for _signum in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signum, signal.SIG_IGN)
