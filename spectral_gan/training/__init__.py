"""Training: the GAN step as a LightningModule (``gan.py``), its settings (``settings.py``,
``schedule.py``, ``speed.py``), what guards and keeps it (``divergence.py``, ``ema.py``,
``health.py``, ``rng_state.py``), its callbacks (``callbacks/``) and ``train(cfg)`` (``run.py``),
which builds all of it from a composed config and fits.

``train`` is imported on first use: importing a light module of this package (the schedule, the
settings) does not import Lightning's trainer.
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "train":
        from spectral_gan.training.run import train
        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
