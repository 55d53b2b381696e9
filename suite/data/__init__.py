"""Datasets as uint8 tensors: named and generic specs (`specs`), decoding into a
memory-mapped cache (`loader`, `cache`, `hfsource`, `digits`), and the splits a
trial trains and evaluates on (`splits.load_splits`)."""
