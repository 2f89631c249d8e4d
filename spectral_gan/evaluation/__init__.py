"""Evaluation during and after training (``evaluator.py``), with its reference statistics
(``reference.py``). Knows data modules and metrics, nothing of Lightning."""
from spectral_gan.evaluation.evaluator import (BALANCED, CONFIG_KEYS, INTRA_FID_AUTO, SCHEDULE_KEYS,
                                               Evaluator, Generate, balanced_labels)

__all__ = ["BALANCED", "CONFIG_KEYS", "INTRA_FID_AUTO", "SCHEDULE_KEYS", "Evaluator", "Generate",
           "balanced_labels"]
