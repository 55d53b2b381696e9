"""`normbench bench`: performance figures, each next to a reference measured in the same process.

One module per part: ``views`` (batched vs per-sample augmentation), ``training``
(the trainer vs a plain PyTorch loop), ``breakdown`` (where an epoch's time goes),
``evaluation`` (encoding, kNN, linear probe), ``ray_overhead`` (a sweep trial vs
``run_trial``) and ``speedups`` (torch.compile, foreach/fused optimizer steps).
The trainer's own fast-path switches (``maybe_compile``) live in ``suite.trial.fastpath``.
"""
