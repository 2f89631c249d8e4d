"""How a multirun ended, for ``spectral-gan-train``'s exit status: a Hydra callback
(``hydra.callbacks.sweep_status`` in configs/hydra/default.yaml) that runs in the launching
process once every job has ended, and counts the jobs whose ``status.json`` says failed."""
from __future__ import annotations

import os
from typing import Any

from hydra.experimental.callback import Callback

from spectral_gan.runs.status import read_status

LAST: dict[str, Any] = {}  # of the multirun that ended last in this process: sweep_dir, failed, total


def failed_jobs(sweep_dir: str) -> tuple[list[str], int]:
    """(the job directories of a sweep whose status.json says failed, how many jobs have one)."""
    failed, total = [], 0
    if not os.path.isdir(sweep_dir):
        return failed, total
    for entry in sorted(os.listdir(sweep_dir)):
        status = read_status(os.path.join(sweep_dir, entry))
        if status is not None:
            total += 1
            if status["status"] == "failed":
                failed.append(os.path.join(sweep_dir, entry))
    return failed, total


class SweepStatus(Callback):
    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = str(config.hydra.sweep.dir)
        failed, total = failed_jobs(sweep_dir)
        LAST.clear()
        LAST.update(sweep_dir=sweep_dir, failed=failed, total=total)
