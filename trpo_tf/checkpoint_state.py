"""A checkpoint's Python state as JSON plus ``.npz``: loading it never runs code.

The state of a run outside TensorFlow (counters, numpy RNG state, normalizer
statistics, the sampler's observations and episode counters) is a tree of dicts,
lists, numbers, strings and numpy arrays. :func:`encode` turns it into strict
JSON (``state.json``) whose arrays live in ``arrays.npz``, read back with
``allow_pickle=False``; :func:`decode` inverts it exactly (dtypes, shapes, ±inf
and NaN, arbitrarily large integers such as a PCG64 state).

Environment state that only ``pickle`` can capture (a synchronous vector env's
sub-environments, with their RNGs) is the one exception. It is stored as bytes
with an HMAC-SHA256 tag made with a key private to the user
(:func:`user_key_path`, created on first use, mode 0600), and unpickled on resume
only when the tag verifies: state this user's own runs wrote. Any other pickled
state (a run directory copied from elsewhere, a tampered file) is dropped, and
the run restarts its episodes from ``reset`` with a message, as it does for envs
whose state cannot be pickled at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "state.json"
ARRAYS_FILE = "arrays.npz"
KEY_ENV = "TRPO_TF_KEY_FILE"

_ARRAY = "__array__"
_FLOAT = "__float__"
_TUPLE = "__tuple__"
_PICKLED = "__pickled__"


def user_key_path() -> Path:
    """Where this user's signing key lives (``TRPO_TF_KEY_FILE`` overrides)."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "trpo_tf" / "checkpoint.key"


def _user_key(create: bool) -> bytes | None:
    path = user_key_path()
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        if not create:
            return None
    # Written whole to a private temp file, then linked into place: a process that
    # races this one never reads a half-written key, and the first link wins.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(temp, path)
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    return _user_key(create=False)


def _tag(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def encode(state: Any) -> tuple[str, dict[str, np.ndarray]]:
    """``state`` as (JSON text, arrays by name); copies every array now.

    Raises:
        TypeError: a value of a type the format does not hold (a dict with
            non-string keys, an arbitrary object).
    """
    arrays: dict[str, np.ndarray] = {}
    key = None

    def walk(value: Any) -> Any:
        nonlocal key
        if isinstance(value, bytes):  # only pickle makes bytes in a run's state
            if key is None:
                key = _user_key(create=True) or b""
            name = f"a{len(arrays)}"
            arrays[name] = np.frombuffer(bytes(value), np.uint8).copy()
            return {_PICKLED: name, "tag": _tag(key, bytes(value)) if key else ""}
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"checkpoint state keys must be strings: {list(value)[:5]}")
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return {_TUPLE: [walk(v) for v in value]}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, np.ndarray | np.generic):
            name = f"a{len(arrays)}"
            arrays[name] = np.array(value, copy=True)
            return {_ARRAY: name}
        if isinstance(value, bool) or value is None or isinstance(value, int | str):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {_FLOAT: repr(value)}
        raise TypeError(f"checkpoint state cannot hold a {type(value).__name__}")

    text = json.dumps(walk(state), allow_nan=False)
    return text, arrays


def write(directory: Path, text: str, arrays: dict[str, np.ndarray]) -> None:
    """Write :func:`encode`'s output into ``directory`` (files fsynced by the caller)."""
    (directory / STATE_FILE).write_text(text)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (directory / ARRAYS_FILE).write_bytes(buffer.getvalue())


def read(directory: Path) -> tuple[Any, list[str]]:
    """The state written by :func:`write`, and notes on pickled parts that were dropped.

    Pickled parts come back as the bytes that were stored when their tag verifies
    with this user's key (their owner unpickles them); otherwise as ``None`` (the
    owner then starts fresh), named in the notes.
    """
    notes: list[str] = []
    key = _user_key(create=False)
    with np.load(directory / ARRAYS_FILE, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            if _ARRAY in value:
                array = arrays[value[_ARRAY]]
                return array[()] if array.ndim == 0 else array
            if _FLOAT in value:
                return float(value[_FLOAT])
            if _TUPLE in value:
                return tuple(walk(v, path) for v in value[_TUPLE])
            if _PICKLED in value:
                return _verified(arrays[value[_PICKLED]].tobytes(), value["tag"], key, path, notes)
            return {k: walk(v, f"{path}.{k}" if path else k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path) for v in value]
        return value

    state = walk(json.loads((directory / STATE_FILE).read_text()), "")
    return state, notes


def _verified(data: bytes, tag: str, key: bytes | None, path: str, notes: list[str]) -> Any:
    """``data`` when this user's key signed it (its owner may unpickle it), else None."""
    if key is None or not tag or not hmac.compare_digest(_tag(key, data), tag):
        notes.append(
            f"{path} was not restored: it is pickled data not signed by this user's key "
            f"({user_key_path()}), e.g. a run directory copied from elsewhere, and loading a "
            "run directory never runs code from it"
        )
        return None
    return data
