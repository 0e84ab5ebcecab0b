"""Live progress on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """One status line rewritten in place on a TTY; one line per report otherwise.

    Shows env steps / total, fps, ETA, recent episode return and KL. fps and ETA
    count from :meth:`begin` (the first iteration of this process), so neither the
    set-up (tracker start-up, restoring a checkpoint) nor the steps of a resumed
    run's earlier processes inflate or deflate them.
    """

    def __init__(
        self,
        total_steps: int,
        stream: TextIO | None = None,
        quiet: bool = False,
        every: int = 1,
    ) -> None:
        self.total_steps = total_steps
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.every = max(1, every)
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.start_steps = 0
        self._open_line = False

    def begin(self, env_steps: int) -> None:
        """Start the clock now, at ``env_steps`` already done (0, or a resumed run's)."""
        self.start = time.perf_counter()
        self.start_steps = env_steps

    def _format(
        self,
        iteration: int,
        env_steps: int,
        episode_return: float,
        kl: float,
        eval_return: float | None,
    ) -> str:
        elapsed = time.perf_counter() - self.start
        fps = (env_steps - self.start_steps) / elapsed if elapsed > 0 else 0.0
        remaining = (self.total_steps - env_steps) / fps if fps > 0 else float("nan")
        percent = 100.0 * env_steps / self.total_steps if self.total_steps else 100.0
        text = (
            f"it {iteration:4d} | steps {env_steps:>9,d}/{self.total_steps:,d} ({percent:5.1f}%) "
            f"| {fps:7,.0f} fps | ETA {_duration(remaining)} | return {episode_return:9.2f} "
            f"| kl {kl:.4f}"
        )
        if eval_return is not None:
            text += f" | eval {eval_return:9.2f}"
        return text

    def update(
        self,
        iteration: int,
        env_steps: int,
        episode_return: float,
        kl: float,
        eval_return: float | None = None,
    ) -> None:
        if self.quiet:
            return
        if not self.interactive and iteration % self.every and eval_return is None:
            return
        line = self._format(iteration, env_steps, episode_return, kl, eval_return)
        if self.interactive:
            self.stream.write("\r\x1b[2K" + line)
            self._open_line = True
            if eval_return is not None:
                self.stream.write("\n")
                self._open_line = False
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str, always: bool = False) -> None:
        """Print ``text`` on its own line (``always``: even when quiet)."""
        if self.quiet and not always:
            return
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._open_line and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
        self._open_line = False


def _duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
