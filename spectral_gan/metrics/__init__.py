"""Evaluation metrics (FID, IS, KID, 2-D mode metrics) and their feature extractors."""
