"""Lightning callbacks of a GAN run (Lightning's ``global_step`` is the generator step).

Each in its own file; the names here are the ones configs/callbacks/*.yaml instantiate."""
from spectral_gan.training.callbacks.checkpointing import (AtomicCheckpointIO, BestCheckpoint,
                                                           StepCheckpoint, step_checkpoint)
from spectral_gan.training.callbacks.early_stopping import EvalEarlyStopping
from spectral_gan.training.callbacks.interrupt import GracefulInterrupt, InterruptFlag
from spectral_gan.training.callbacks.progress import StepProgressBar
from spectral_gan.training.callbacks.timer import StepTimer, peak_rss_mb

__all__ = ["AtomicCheckpointIO", "BestCheckpoint", "EvalEarlyStopping", "GracefulInterrupt",
           "InterruptFlag", "StepCheckpoint", "StepProgressBar", "StepTimer", "peak_rss_mb",
           "step_checkpoint"]
