"""Discriminator normalizations, usable on any ``nn.Module`` without Hydra or Lightning.

Each normalization lives in its own file and registers itself by name, declaring its properties
(``registry.NormSpec``); ``registry.discover`` finds a new file in this package without a line
here. The imports below only re-export the public names.
"""
from spectral_gan.norms.bidirectional import BidirectionalSpectralNorm, bidirectional_spectral_norm
from spectral_gan.norms.hook import IDENTITY, NormHook, normalize_all
from spectral_gan.norms.mean import MeanCenter, MeanSpectralNorm, mean_spectral_norm
from spectral_gan.norms.optional import OptionalSpectralNorm, optional_spectral_norm
from spectral_gan.norms.power_iteration import PowerIteration, power_iteration_paused, power_iterations
from spectral_gan.norms.properties import (gate_signals_needed, generator_weight_norms, mixes_batch,
                                           per_update_signals, run_per_update, update_gates)
from spectral_gan.norms.registry import (
    FEATURE_NORMS,
    WEIGHT_NORMS,
    NormSpec,
    PerUpdate,
    import_methods,
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
    "NormSpec",
    "OptionalSpectralNorm",
    "PerUpdate",
    "PowerIteration",
    "SpectralNorm",
    "WEIGHT_NORMS",
    "bidirectional_spectral_norm",
    "gate_signals_needed",
    "generator_weight_norms",
    "import_methods",
    "mean_spectral_norm",
    "mixes_batch",
    "normalize_all",
    "optional_spectral_norm",
    "per_update_signals",
    "power_iteration_paused",
    "power_iterations",
    "register_feature_norm",
    "register_weight_norm",
    "run_per_update",
    "spectral_norm",
    "update_gates",
]
