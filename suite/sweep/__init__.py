"""Distributed sweeps: a YAML spec of trials (`spec`, `grid`) scheduled by Ray Tune (`runner`),
each trial one `suite.trial.train.run_trial` (`trainable`; data-parallel through Ray Train
when workers > 1), with search and early stopping inside grid cells (`search`, `searchers`)
and the sweep's tables kept by a Tune callback (`tables`)."""
