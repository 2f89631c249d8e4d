"""What became of a run, written into its run directory: ``status.json``.

``{"status": "finished" | "diverged" | "failed" | "interrupted", "reason": "...", "at": time}``,
written by ``spectral-gan-train`` when a run ends however it ends. A sweep's comparison marks
failed runs from it (a run that failed validation has no event file), and a rerun of the same
sweep skips finished jobs and resumes interrupted ones (``spectral_gan.cli.train``).
"""
from __future__ import annotations

import json
import os
import time

FILE = "status.json"
STATES = ("finished", "diverged", "failed", "interrupted")


def write_status(run_dir: str, status: str, reason: str = "") -> None:
    if status not in STATES:
        raise ValueError(f"status {status!r}: one of {', '.join(STATES)}")
    try:
        os.makedirs(run_dir, exist_ok=True)
        tmp = os.path.join(run_dir, f".{FILE}.tmp-{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump({"status": status, "reason": reason,
                       "at": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
        os.replace(tmp, os.path.join(run_dir, FILE))
    except OSError:  # an unwritable run directory was already reported as the error itself
        pass


def read_status(run_dir: str) -> dict | None:
    """The run's recorded status (None: none recorded, or unreadable)."""
    try:
        with open(os.path.join(run_dir, FILE)) as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and value.get("status") in STATES else None
