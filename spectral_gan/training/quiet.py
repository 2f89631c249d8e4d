"""Keep the output of the commands to what a user can act on.

Removed (each by its exact text, so anything else Lightning, torch or torchmetrics says still
gets through):

- Lightning's start-up lines ``Seed set to 0`` (the seed is in the run's config) and ``GPU
  available: False, used: False`` / ``TPU available: ...`` (the device is the config's trainer);
- Lightning's adverts (``💡 Tip: For seamless cloud ...``, litlogger / litmodels);
- ``Trainer.fit stopped: max_steps=40 reached``: the run's own end line says how many generator
  steps it trained, and why it stopped;
- ``Restoring states from ...`` / ``Restored all states ...``: a resume says so in generator steps;
- on a resume: ``Checkpoint directory ... exists and is not empty`` (it continues that directory)
  and ``Be aware that when using ckpt_path, callbacks ... need to be provided`` (a resume with
  another ``checkpoint_every``: ``StepCheckpoint`` keeps ``last.ckpt`` current without that state)
  and ``The dirpath has changed`` (a checkpoint resumed into a new run directory);
- the ``isinstance(treespec, LeafSpec)`` deprecation that Lightning's ``_pytree`` triggers in torch;
- torchmetrics' ``InceptionScore`` / ``Kernel Inception Distance will save all extracted
  features`` (the evaluation keeps ``eval.num_samples`` logits and KID features by design; the
  protocol says how many);
- ``Using ModelCheckpoint with manual optimization ...``: the periodic checkpoints are meant to
  hold the state after the step's updates (the generator step it is named after).
"""
from __future__ import annotations

import logging
import warnings

# Lightning's info messages (rank_zero_info logs through these loggers).
_LIGHTNING_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                      "lightning.pytorch.utilities.rank_zero",
                      "pytorch_lightning.trainer.connectors.checkpoint_connector",
                      "lightning_fabric.utilities.seed")
_DROPPED_PREFIXES = ("Seed set to ", "GPU available: ", "TPU available: ", "HPU available: ",
                     "💡 Tip:", "`Trainer.fit` stopped:", "Restoring states from the checkpoint",
                     "Restored all states from the checkpoint")
# Warnings, as regular expressions matched at the start of the message.
_DROPPED_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                     r"Metric `InceptionScore` will save all extracted features",
                     r"Metric `Kernel Inception Distance` will save all extracted features",
                     r"Using ModelCheckpoint with manual optimization and every_n_train_steps")
_RESUME_WARNINGS = (r"Checkpoint directory .* exists and is not empty",
                    r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint",
                    r"The dirpath has changed from")


class _DropMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  a malformed record is not ours to judge
            return True
        return not message.startswith(_DROPPED_PREFIXES)


_FILTER = _DropMessages()


def quiet_lightning(resuming: bool = False) -> None:
    """Install the filters (idempotent); ``resuming``: also the warnings a resume makes expected."""
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for message in _DROPPED_WARNINGS + (_RESUME_WARNINGS if resuming else ()):
        warnings.filterwarnings("ignore", message=message)
