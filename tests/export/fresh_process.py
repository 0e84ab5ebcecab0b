"""Run code on exports in one fresh, TensorFlow-only Python process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np


def in_fresh_process(
    code: str, root: Path, jobs: dict[str, dict[str, Any]]
) -> dict[str, dict[str, np.ndarray]]:
    """Run ``code`` with ``json.dumps(list of jobs)`` as ``sys.argv[1]``; its results by key.

    Each job maps names to strings (passed as they are) or arrays (saved as
    ``root/<key>_<name>.npy``, passed as that path); ``result`` is added: the ``.npz``
    the code must write for the job. ``code`` must print ``ok`` last.
    """
    listed = []
    for key, job in jobs.items():
        entry = {"result": str(root / f"{key}.npz")}
        for name, value in job.items():
            if isinstance(value, np.ndarray):
                path = root / f"{key}_{name}.npy"
                np.save(path, value)
                value = str(path)
            entry[name] = value
        listed.append(entry)
    completed = subprocess.run(
        [sys.executable, "-c", code, json.dumps(listed)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert completed.stdout.strip().endswith("ok")
    results = {}
    for key in jobs:
        with np.load(root / f"{key}.npz") as data:
            results[key] = {name: data[name] for name in data.files}
    return results
