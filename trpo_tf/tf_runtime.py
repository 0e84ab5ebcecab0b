"""Process-wide TensorFlow settings: a quiet CLI, threads, graph rewrites, GPUs.

Importing this module does not import TensorFlow.

On a CPU-only machine ``import tensorflow`` writes a block of C++ log lines straight
to file descriptor 2 (absl's "All log messages before absl::InitializeLog()", oneDNN,
"Could not find cuda drivers"), twice; the first device query adds a failed
``cuInit`` and the first int32 kernel a oneDNN notice. ``TF_CPP_MIN_LOG_LEVEL`` does
not reach the import-time lines (absl writes them before it reads any flag), and
TensorFlow has no switch for single messages. So the CLI (:func:`quiet_start`) sends
fd 2 through a pipe for the rest of the process: a thread forwards every line that
is not known TensorFlow chatter (:data:`_CHATTER`) to the real stderr, and Python's
own ``sys.stderr`` writes to the real stderr directly (a terminal stays a terminal
for the progress line). A missing GPU that was asked for (``CUDA_VISIBLE_DEVICES``
names one, or the machine has an NVIDIA driver) becomes one ``trpo-tf: warning:``
line. ``TRPO_TF_VERBOSE=1`` (the CLI's ``--verbose``) leaves TensorFlow's output alone.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import io
import itertools
import os
import re
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VERBOSE_ENV = "TRPO_TF_VERBOSE"
"""``TRPO_TF_VERBOSE=1``: TensorFlow's log as TensorFlow writes it."""

# What TensorFlow prints that says nothing a trpo-tf user can act on (or that
# :func:`_gpu_warning` says in one line). Matched against the message after the glog
# prefix ``I0000 00:00:1796532263.019263   18094 port.cc:153] ``.
_CHATTER = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "oneDNN supports DT_",
    "Could not find cuda drivers on your machine",
    "failed call to cuInit",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "TF-TRT Warning: Could not find TensorRT",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "retrieving CUDA diagnostic information for host",
    "hostname:",
    "libcuda reported version is",
    "kernel reported version is",
    "kernel driver does not appear to be running on this host",
    "Cannot dlopen some GPU libraries",
    "Skipping registering GPU devices",
    "successful NUMA node read from SysFS",
    "Created device /job:localhost",
    "Created TensorFlow Lite XNNPACK delegate for CPU",
)
_GLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+(?:\.\d+)?\s+\d+ [\w./-]+:\d+\] ")
_CUINIT = re.compile(r"failed call to cuInit: (.*)$")


def verbose_requested() -> bool:
    """``TRPO_TF_VERBOSE`` is set to something other than ``""``, ``0`` or ``false``."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def is_chatter(line: str) -> bool:
    """A line of TensorFlow's log that the quiet CLI drops."""
    message = _GLOG.sub("", line.strip())
    return any(known in message for known in _CHATTER)


class StderrFilter:
    """File descriptor 2 through a pipe; a thread forwards all but TensorFlow chatter.

    Python's ``sys.stderr`` is replaced by a stream on the real stderr, so Python's
    own output keeps its order and its terminal; what goes through the pipe is what
    C++ code (and child processes sharing fd 2) write.

    Attributes:
        dropped: the chatter lines dropped so far.
    """

    def __init__(self) -> None:
        self.dropped: list[str] = []
        self._real = os.dup(2)
        read_end, write_end = os.pipe()
        self._read_end = read_end
        self._markers = itertools.count()
        self._synced: dict[bytes, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, name="trpo-tf-stderr", daemon=True)
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        self._python_stderr = sys.stderr
        os.dup2(write_end, 2)
        os.close(write_end)
        sys.stderr = io.TextIOWrapper(
            io.FileIO(os.dup(self._real), "w"),
            encoding=getattr(self._python_stderr, "encoding", None) or "utf-8",
            errors="backslashreplace",
            line_buffering=True,
            write_through=True,
        )
        self._thread.start()

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self._read_end, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._line(line)
        if pending:
            self._line(pending)

    def _line(self, raw: bytes) -> None:
        with self._lock:
            event = self._synced.pop(raw, None)
        if event is not None:
            event.set()
            return
        text = raw.decode("utf-8", "replace")
        if is_chatter(text):
            self.dropped.append(text)
            return
        with contextlib.suppress(OSError):
            os.write(self._real, raw + b"\n")

    def sync(self, timeout: float = 2.0) -> None:
        """Wait until everything written to fd 2 before this call has been handled."""
        marker = f"\x00trpo-tf-stderr-sync-{next(self._markers)}".encode()
        event = threading.Event()
        with self._lock:
            self._synced[marker] = event
        try:
            os.write(2, marker + b"\n")
        except OSError:
            return
        event.wait(timeout)

    def stop(self) -> None:
        """Forward what is left and give fd 2 back to the real stderr."""
        self.sync(timeout=1.0)
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(self._real, 2)  # closes this process's write end of the pipe
        self._thread.join(timeout=0.2)  # ends at once unless a child process holds it too


_filter: StderrFilter | None = None


def filter_stderr() -> StderrFilter | None:
    """Start the process's :class:`StderrFilter` (once); None where it cannot run.

    Not under ``--verbose``, and not where ``sys.stderr`` is not the process's own
    stderr (a test capturing output, an embedding application).
    """
    global _filter
    if _filter is not None:
        return _filter
    if verbose_requested() or sys.stderr is not sys.__stderr__:
        return None
    try:
        sys.__stderr__.fileno()
        _filter = StderrFilter()
    except (OSError, ValueError, AttributeError):
        return None
    atexit.register(_filter.stop)
    return _filter


def import_tensorflow_quietly(verbose: bool | None = None) -> Any:
    """``import tensorflow`` and list its devices without TensorFlow's C++ log.

    Args:
        verbose: keep TensorFlow's own logging (default: :func:`verbose_requested`).

    Returns:
        The ``tensorflow`` module.
    """
    with quiet_start(verbose):
        import tensorflow as tf
    return tf


@contextlib.contextmanager
def quiet_start(verbose: bool | None = None) -> Iterator[None]:
    """Run a block that may load TensorFlow, without TensorFlow's log from then on.

    Starts :func:`filter_stderr`; if the block loaded TensorFlow, its devices are
    listed (the first device query is what logs a failed ``cuInit``) and a GPU that
    was asked for and not found is one ``trpo-tf: warning:`` line. With ``verbose``
    (default: :func:`verbose_requested`) TensorFlow logs everything it logs.
    """
    if verbose is None:
        verbose = verbose_requested()
    if "tensorflow" not in sys.modules:
        defer_unused_imports()
    if verbose:
        # trpo_tf sets a default of 2 on import; the raw log means all of it.
        if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "2":
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        yield
        return
    loaded = "tensorflow" in sys.modules
    active = filter_stderr()
    yield
    if loaded or "tensorflow" not in sys.modules:
        return
    try:
        gpus = sys.modules["tensorflow"].config.list_physical_devices("GPU")
    except Exception:  # noqa: BLE001 - a broken install shows itself on first use
        return
    if active is not None:
        active.sync()
    warning = _gpu_warning(active.dropped if active else [], found=bool(gpus))
    if warning:
        print(warning, file=sys.stderr, flush=True)


class _DeferredModule(types.ModuleType):
    """Stands in ``sys.modules`` for a module until an attribute of it is used.

    (``importlib.util.LazyLoader`` does not do for this: the import statement reads
    the module's ``__spec__``, which makes a lazy module execute at once.)
    """

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, name)


def defer_unused_imports() -> None:
    """Skip the parts of TensorFlow's import that training never uses (~0.5 s of CPU).

    * ``import tensorflow`` imports Keras, whose image-gallery helper imports
      ``matplotlib.pyplot`` (~0.35 s): it becomes a lazy module, executed on first use
      (trpo_tf draws its curves through ``matplotlib.figure``, without pyplot).
    * TensorFlow Probability imports ``distutils.version`` for one version check, which
      setuptools' distutils shim turns into an import of setuptools and pkg_resources
      (~0.2 s); where the standard library still has distutils (Python < 3.12) the
      shim is taken out of the import path.
    """
    if "matplotlib.pyplot" not in sys.modules:
        with contextlib.suppress(Exception):
            spec = importlib.util.find_spec("matplotlib.pyplot")
            if spec is not None:
                placeholder = _DeferredModule(spec.name)
                placeholder.__spec__ = spec
                sys.modules[spec.name] = placeholder
    if sys.version_info < (3, 12) and "distutils" not in sys.modules:
        with contextlib.suppress(Exception):
            import _distutils_hack

            _distutils_hack.remove_shim()


def gpu_asked_for() -> str | None:
    """Why this process should have a GPU, or None: ``CUDA_VISIBLE_DEVICES``, a driver."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        visible = visible.strip()
        if visible and visible != "-1":
            return f"CUDA_VISIBLE_DEVICES={visible}"
        return None  # hidden on purpose
    if Path("/proc/driver/nvidia/version").exists():
        return "an NVIDIA driver is loaded"
    return None


def _gpu_warning(captured: list[str], found: bool) -> str | None:
    """One line when a GPU was asked for and TensorFlow found none, saying why."""
    if found:
        return None
    asked = gpu_asked_for()
    if asked is None:
        return None
    reason = "TensorFlow found no GPU"
    for line in captured:
        if match := _CUINIT.search(line):
            reason = f"cuInit failed: {match.group(1).strip()}"
            break
        if "Could not find cuda drivers" in line:
            reason = "TensorFlow could not load the CUDA driver"
    return (
        f"trpo-tf: warning: no GPU ({asked}, but {reason}); running on the CPU "
        f"({VERBOSE_ENV}=1 shows TensorFlow's log)"
    )


def configure_tensorflow(threads: int, graph_optimizer: bool = False) -> None:
    """Use ``threads`` intra/inter-op threads (0 = TensorFlow's default); grappler on/off.

    Small MLP graphs run faster on one thread than on several (thread hand-offs
    cost more than the arithmetic); large networks want 0. Threads can only be set
    before TensorFlow's runtime starts; later calls keep the current setting.
    Grappler rewrites every function graph on its first call; for the update's
    small graphs that costs more than it saves (docs/benchmarks/speed.md).
    Visible GPUs take memory as the run needs it instead of all of it at start, so
    several runs (``benchmarks/learning.py``'s parallel seeds) can share one GPU.
    """
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not graph_optimizer})
    for gpu in tf.config.list_physical_devices("GPU"):
        # Already initialized: its allocation policy is fixed for the process.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    if threads <= 0:
        return
    # The runtime may already be initialized in this process (e.g. several runs in one).
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
