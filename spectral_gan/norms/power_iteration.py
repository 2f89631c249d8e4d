"""Persistent-vector power iteration shared by every spectral normalization.

The estimate follows Miyato et al., "Spectral Normalization for GANs", ICLR 2018, Algorithm 1:
``v <- W^T u / ||W^T u||``, ``u <- W v / ||W v||``, ``sigma = u^T W v``, with u and v carried
from one training step to the next and no gradient through them.

Vectors and sigma are kept in fp32 whatever autocast says: ``eps=1e-12`` underflows in fp16 and
bf16 loses the estimate's precision.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


def weight_matrix(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """View a weight as the matrix whose spectral norm is taken: ``dim`` becomes the rows."""
    if dim != 0:
        weight = weight.movedim(dim, 0)
    return weight.flatten(1)


class PowerIteration(nn.Module):
    """Holds u (rows) and v (columns) of one matrix view and advances them in place.

    ``paused`` stops the iteration without changing the normalized weight; the training loop
    sets it during the generator update so that only discriminator updates advance u and v.
    """

    def __init__(self, matrix: torch.Tensor, eps: float, warmup_iterations: int = 15) -> None:
        super().__init__()
        self.eps = eps
        self.paused = False
        rows, cols = self.shape_of(matrix)
        with torch.no_grad():
            u = F.normalize(matrix.new_empty(rows, dtype=torch.float32).normal_(0, 1), dim=0, eps=eps)
            v = F.normalize(matrix.new_empty(cols, dtype=torch.float32).normal_(0, 1), dim=0, eps=eps)
        self.register_buffer("u", u)
        self.register_buffer("v", v)
        # Start near the top singular pair, as torch's spectral_norm does, so the first training
        # step already divides by a good estimate.
        self.step(matrix, warmup_iterations)

    # The matrix products, overridden by views that are not stored as a matrix.
    @staticmethod
    def shape_of(matrix: torch.Tensor) -> tuple[int, int]:
        return tuple(matrix.shape)

    @staticmethod
    def mv(matrix: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``M v``."""
        return torch.mv(matrix, v)

    @staticmethod
    def mv_t(matrix: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``M^T u``."""
        return torch.mv(matrix.t(), u)

    @torch.no_grad()
    def step(self, matrix: torch.Tensor, n: int) -> None:
        with torch.autocast(device_type=matrix.device.type, enabled=False):
            w = matrix.detach().float()
            for _ in range(n):
                self.v.copy_(self._normalized(self.mv_t(w, self.u), self.v))
                self.u.copy_(self._normalized(self.mv(w, self.v), self.u))

    def _normalized(self, x: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """``x / ||x||``, or ``previous`` where ``||x|| <= eps`` (a zero weight maps every vector
        to 0: normalizing that would leave u, v at zero, and sigma at 0, for the rest of
        training, whatever the weight becomes). On device, no host sync."""
        norm = torch.linalg.vector_norm(x)
        return torch.where(norm > self.eps, x / norm.clamp_min(self.eps), previous)

    def sigma(self, matrix: torch.Tensor) -> torch.Tensor:
        """``u^T W v`` in fp32, differentiable in W (u and v are constants)."""
        # Clones: u and v change in place at the next step while autograd may still hold them.
        u = self.u.clone(memory_format=torch.contiguous_format)
        v = self.v.clone(memory_format=torch.contiguous_format)
        with torch.autocast(device_type=matrix.device.type, enabled=False):
            return torch.dot(u, self.mv(matrix.float(), v))


class SecondDimPowerIteration(PowerIteration):
    """Power iteration for a weight (a, b, ...) viewed with dim 1 as the rows: (b, a * rest).

    Takes ``weight.flatten(2)`` (a view, no copy) and computes ``M v`` and ``M^T u`` as batched
    products over dim 0, instead of materializing the transposed matrix once per evaluation (a
    full copy of the weight; measured slower for the SN CNN's convolutions, docs/benchmarks.md). The
    vectors are laid out as ``weight.movedim(1, 0).flatten(1)`` would have them.
    """

    @staticmethod
    def shape_of(matrix: torch.Tensor) -> tuple[int, int]:
        a, b, k = matrix.shape
        return b, a * k

    @staticmethod
    def mv(matrix: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        a, _, k = matrix.shape
        return torch.bmm(matrix, v.view(a, k, 1)).sum(0).squeeze(1)

    @staticmethod
    def mv_t(matrix: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.matmul(u, matrix).reshape(-1)


def power_iterations(module: nn.Module) -> Iterator[PowerIteration]:
    return (m for m in module.modules() if isinstance(m, PowerIteration))


@contextlib.contextmanager
def power_iteration_paused(module: nn.Module) -> Iterator[None]:
    """Within the block, forwards of ``module`` use the stored u, v without advancing them."""
    states = [(p, p.paused) for p in power_iterations(module)]
    for p, _ in states:
        p.paused = True
    try:
        yield
    finally:
        for p, was in states:
            p.paused = was
