"""Random-number state in checkpoints, so that a resumed run draws the noise the uninterrupted
one would have drawn."""
from __future__ import annotations

import random
from typing import Any

import torch


def capture_rng() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate()[1],
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng(rng: dict[str, Any] | None) -> None:
    if not rng:
        return
    torch.set_rng_state(rng["torch"])
    state = random.getstate()
    random.setstate((state[0], tuple(rng["python"]), state[2]))
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
