"""Measurements on embeddings: kNN, the linear probe, norm statistics, gradient
instruments and the norm-as-confidence diagnostics. Pure tensor/array functions."""
