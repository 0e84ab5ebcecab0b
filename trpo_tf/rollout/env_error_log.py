"""One log line per kind of env failure per batch, and a count of the repeats.

An env that fails every episode fails in every copy of it, on every worker: the
asynchronous runner reports the first failure of each kind in a batch as it
happens and sums the repeats up in one line once the batch is complete.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_ENV_ERROR_PLACE = re.compile(r"^worker \d+: env \d+ ")
"""The part of a worker's env-error line that differs between copies of one env."""


def env_error_kind(message: str) -> str:
    """``message`` without the worker and env it names, and without the rebuild note."""
    return _ENV_ERROR_PLACE.sub("", message.split("); env rebuilt")[0])


class EnvErrorLog:
    """Counts env failures and logs each kind once per batch through ``log``.

    ``last_error[w]`` is worker ``w``'s most recent failure message (cleared by the
    runner when the worker delivers a segment), named when the worker dies.
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self.count = 0
        self.last_error: dict[int, str] = {}
        self._logged: set[str] = set()  # kinds of env error logged in this batch
        self._quiet = 0  # repeats of those, summed up by end_batch

    def record(self, worker: int, message: str) -> None:
        """Count worker ``worker``'s failure; log it unless its kind was logged this batch."""
        self.count += 1
        self.last_error[worker] = message
        kind = env_error_kind(message)
        if kind in self._logged:
            self._quiet += 1
            return
        self._logged.add(kind)
        self._log(message)

    def end_batch(self) -> None:
        """Log how many failures went unlogged as repeats in this batch; start afresh."""
        if self._quiet:
            self._log(f"{self._quiet} more env failures like the above in this batch")
        self._logged.clear()
        self._quiet = 0
