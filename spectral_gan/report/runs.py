"""Read the runs of a sweep directory: their overrides and scalar series."""
from __future__ import annotations

import glob
import os
import struct
from dataclasses import dataclass, field

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from spectral_gan.runs.status import FILE as STATUS_FILE, read_status

IGNORED_OVERRIDES = ("seed", "hydra.", "callbacks.progress_bar", "ckpt_path", "trainer.", "extras.")


@dataclass
class Run:
    path: str
    overrides: dict[str, str]
    scalars: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)  # step, value, wall
    damaged: dict[str, int] = field(default_factory=dict)  # event file -> byte where it breaks

    @property
    def seed(self) -> str:
        return self.overrides.get("seed", "0")

    @property
    def config(self) -> str:
        """The run's configuration without its seed: runs that differ only by seed group together."""
        keys = sorted(k for k in self.overrides if not k.startswith(IGNORED_OVERRIDES))
        return " ".join(f"{k}={self.overrides[k]}" for k in keys) or "(defaults)"

    @property
    def diverged(self) -> bool:
        return "events/diverged" in self.scalars or os.path.exists(
            os.path.join(self.path, "checkpoints", "diverged.ckpt"))

    def series(self, tag: str) -> list[tuple[int, float]]:
        return [(s, v) for s, v, _ in self.scalars.get(tag, [])]

    def final(self, tag: str) -> float | None:
        """The last value logged under ``tag`` (None: never logged)."""
        series = self.series(tag)
        return series[-1][1] if series else None

    @property
    def last_step(self) -> int:
        """The last generator step with a logged ``loss/d`` (0: none logged)."""
        return max((s for s, _ in self.series("loss/d")), default=0)

    def saved_config(self) -> dict:
        """The run's composed config as Hydra saved it (empty when there is none to read)."""
        try:
            with open(os.path.join(self.path, ".hydra", "config.yaml")) as f:
                cfg = yaml.safe_load(f)
        except (OSError, yaml.YAMLError):
            return {}
        return cfg if isinstance(cfg, dict) else {}

    @property
    def expected_steps(self) -> int | None:
        """``steps`` from the run's saved config (None when it has none to read)."""
        try:
            return int(self.saved_config().get("steps"))
        except (TypeError, ValueError):
            return None

    @property
    def failed(self) -> bool:
        """Its ``status.json`` says failed: refused by validation, or crashed (``run_status``)."""
        status = read_status(self.path)
        return status is not None and status["status"] == "failed"

    @property
    def incomplete(self) -> bool:
        """Logged less than its configured length, and neither diverged nor recorded as failed:
        killed, interrupted, still running, or its event file is truncated."""
        expected = self.expected_steps
        return (expected is not None and self.last_step < expected and not self.diverged
                and not self.failed)

    def steps_per_second(self) -> float | None:
        """Generator steps per second of wall time, from the logged loss timestamps."""
        points = self.scalars.get("loss/d", [])
        if len(points) < 2:
            return None
        (s0, _, t0), (s1, _, t1) = points[0], points[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else None


def truncated_at(path: str) -> int | None:
    """Where an event file's record framing breaks (TFRecord: 8-byte length, 4-byte CRC, the
    data, 4-byte CRC), or None when it is whole. TensorBoard's reader stops there without a
    word; a run killed mid-write, or a copy cut short, ends so."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            pos = 0
            while pos < size:
                header = f.read(12)
                if len(header) < 12:
                    return pos
                (length,) = struct.unpack("<Q", header[:8])
                pos += 12 + length + 4
                if pos > size:
                    return pos - 12 - length - 4
                f.seek(pos)
    except OSError:
        return 0
    return None


def _overrides(run_dir: str) -> dict[str, str]:
    path = os.path.join(run_dir, ".hydra", "overrides.yaml")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        items = yaml.safe_load(f) or []
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def read_run(run_dir: str) -> Run | None:
    tb = os.path.join(run_dir, "tb")
    if not os.path.isdir(tb):
        return None
    # A resumed run's event file may sort before the first one (same second, writer counter
    # 10 < 9 as text) and be read first: no purge by step; the last written value of a step wins.
    acc = EventAccumulator(tb, size_guidance={"scalars": 0, "images": 1, "tensors": 1},
                           purge_orphaned_data=False)
    acc.Reload()
    scalars = {t: [(e.step, e.value, e.wall_time) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    for tag, points in scalars.items():  # a resumed run logs again from its checkpoint: keep the last
        by_step = {s: (s, v, w) for s, v, w in sorted(points, key=lambda p: p[2])}
        scalars[tag] = [by_step[s] for s in sorted(by_step)]
    run = Run(run_dir, _overrides(run_dir), scalars)
    run.damaged = {p: at for p in sorted(glob.glob(os.path.join(tb, "**", "events.out.tfevents.*"),
                                                   recursive=True))
                   if (at := truncated_at(p)) is not None}
    return run


def read_sweep(sweep_dir: str) -> list[Run]:
    """Every run under ``sweep_dir`` (a multirun directory, or a folder of run directories)."""
    runs = []
    for root, dirs, files in os.walk(sweep_dir):
        if "tb" in dirs:
            run = read_run(root)
            if run is not None:
                runs.append(run)
            dirs[:] = []  # a run's own subfolders hold no further runs
        elif STATUS_FILE in files:  # a job that failed before it logged anything
            runs.append(Run(root, _overrides(root), {}))
            dirs[:] = []
    return sorted(runs, key=lambda r: r.path)
