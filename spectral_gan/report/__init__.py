"""Sweep comparison: tables and plots from the TensorBoard event files of a multirun."""
