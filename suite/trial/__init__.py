"""One trial: backbone, views, optimizer, runtime (device, precision, data
parallelism), checkpoints, evaluation, the training function `train.run_trial`
and the backbone export."""
