"""Discriminator normalizations, usable on any ``nn.Module`` without Hydra or Lightning.

Each weight normalization lives in its own file and registers itself by name; importing it here
makes it available to configs (``norm.weight=<name>``).
"""
from spectral_gan.norms import feature  # noqa: F401  (registers feature norms)
from spectral_gan.norms.bidirectional import BidirectionalSpectralNorm, bidirectional_spectral_norm
from spectral_gan.norms.hook import IDENTITY, NormHook, normalize_all
from spectral_gan.norms.mean import MeanCenter, MeanSpectralNorm, mean_spectral_norm, mixes_batch
from spectral_gan.norms.optional import (OptionalSpectralNorm, gate_signals_needed,
                                         optional_spectral_norm, update_gates)
from spectral_gan.norms.power_iteration import PowerIteration, power_iteration_paused, power_iterations
from spectral_gan.norms.registry import (
    FEATURE_NORMS,
    WEIGHT_NORMS,
    register_feature_norm,
    register_weight_norm,
)
from spectral_gan.norms.spectral import SpectralNorm, spectral_norm

__all__ = [
    "BidirectionalSpectralNorm",
    "FEATURE_NORMS",
    "IDENTITY",
    "MeanCenter",
    "MeanSpectralNorm",
    "NormHook",
    "OptionalSpectralNorm",
    "PowerIteration",
    "SpectralNorm",
    "WEIGHT_NORMS",
    "bidirectional_spectral_norm",
    "gate_signals_needed",
    "mean_spectral_norm",
    "mixes_batch",
    "normalize_all",
    "optional_spectral_norm",
    "power_iteration_paused",
    "power_iterations",
    "register_feature_norm",
    "register_weight_norm",
    "spectral_norm",
    "update_gates",
]
