"""benchmarks/pixels.py still trains both variants and writes its report (toy size)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_pixels_benchmark_reports_every_variant_and_the_references(tmp_path: Path) -> None:
    out = tmp_path / "pixels.json"
    plot = tmp_path / "pixels.png"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "pixels.py"),
            *("--seeds", "0", "--steps", "256", "--steps-per-iteration", "128"),
            *("--eval-every", "1", "--json", str(out), "--plot", str(plot)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled"),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results["runs"]) == {"cnn", "mlp"}
    for runs in results["runs"].values():
        (run,) = runs
        assert [point["env_steps"] for point in run["curve"]] == [128, 256]
    assert results["experiments"]["cnn"]["policy"]["network"]["name"] == "cnn"
    assert 0.0 < results["references"]["random"] < results["references"]["optimal"]
    assert "| cnn | 256 |" in done.stdout and "| mlp | 256 |" in done.stdout
    assert plot.stat().st_size > 0
