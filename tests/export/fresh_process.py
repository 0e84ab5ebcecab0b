"""Run code on exports in one fresh, TensorFlow-only Python process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

PROLOGUE = """\
import json, sys
import numpy as np
import tensorflow as tf

jobs = json.loads(sys.argv[1])
"""
EPILOGUE = """
assert "tensorflow_probability" not in sys.modules, "TFP was imported"
assert "trpo_tf" not in sys.modules, "trpo_tf was imported"
print("ok")
"""


def in_fresh_process(
    code: str, root: Path, jobs: dict[str, dict[str, Any]]
) -> dict[str, dict[str, np.ndarray]]:
    """Run ``code`` on ``jobs`` in a new interpreter; the arrays it saved, by job key.

    ``code`` runs after :data:`PROLOGUE` (``json``, ``sys``, ``np``, ``tf`` imported and
    ``jobs`` the list of jobs) and before :data:`EPILOGUE`, which asserts that neither
    TensorFlow Probability nor trpo_tf was imported. Each job maps names to strings
    (passed as they are) or arrays (saved as ``root/<key>_<name>.npy``, passed as that
    path); ``result`` is added: the ``.npz`` the code must write for the job.
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
        [sys.executable, "-c", PROLOGUE + textwrap.dedent(code) + EPILOGUE, json.dumps(listed)],
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
