"""Checkpoints of spectral-gan-train: reading them and rebuilding the generator (``load.py``),
what a checkpoint may run (``trust.py``), resuming a run from one (``resume.py``,
``resume_command.py``) and evaluating one (``evaluate.py``)."""
