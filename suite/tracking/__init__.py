"""Experiment tracking (MLflow, TensorBoard, W&B) for local trials and sweeps."""
