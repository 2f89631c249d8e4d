"""Feature normalizations placed after hidden discriminator layers.

``batch``: BatchNorm, the DCGAN discriminator's normalization and the SN paper's BN baseline
(Radford et al. 2016; Miyato et al. 2018, Table 2). It mixes samples of a batch, so it cannot be
combined with per-sample gradient penalties.
"""
from __future__ import annotations

from torch import nn

from spectral_gan.norms.registry import register_feature_norm


@register_feature_norm("batch", mixes_batch=True)
def batch_norm(num_features: int, dims: int) -> nn.Module:
    """BatchNorm1d for vectors (``dims=1``), BatchNorm2d for feature maps (``dims=2``)."""
    return nn.BatchNorm1d(num_features) if dims == 1 else nn.BatchNorm2d(num_features)
