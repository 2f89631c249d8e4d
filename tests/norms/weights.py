"""Helpers of the normalization tests: a weight's exact largest singular value, and a layer's
weight after its power iteration has converged."""
from __future__ import annotations

import torch
from torch import nn


def sigma(w: torch.Tensor, dim: int) -> torch.Tensor:
    """The exact spectral norm of ``w`` with dimension ``dim`` as the rows."""
    return torch.linalg.matrix_norm(w.detach().movedim(dim, 0).flatten(1), ord=2)


def converge(layer: nn.Module, n: int = 300) -> torch.Tensor:
    """The layer's normalized weight after ``n`` accesses in training mode (one iteration each)."""
    layer.train()
    for _ in range(n):
        w = layer.weight
    return w.detach()
