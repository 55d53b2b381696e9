"""What one bench run measures: sizes for the full run and for ``--quick``.

``--quick`` exists for the test suite and a first look: a tiny timm model on a
few hundred digits images and a 5,000-sample kNN bank, sized to finish within
60 s on 2 CPU cores. It runs torch with one thread unless ``--threads`` says
otherwise: on a shared machine, OpenMP threads that outnumber the free cores
spin against each other and made a tiny model ~15x slower on 2 threads than on 1
when another process held a core, which no ratio survives. The full run uses ``resnet10t`` at batch 256 and a
realistic 50,000 x 512 kNN bank.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from suite.core.errors import ConfigError

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024  # TrialConfig.image_size's range


@dataclass(frozen=True)
class BenchSettings:
    quick: bool
    device: str
    methods: tuple[str, ...]
    backbone: str
    image_size: int
    dataset: str = "digits"
    batch_size: int = 256
    train_limit: int = 1024  # images per training epoch
    epochs: int = 3  # the first epoch is a warm-up; figures use the best later one
    linear_epochs: int = 100  # the trial default, so the evaluation figure is the real cost
    repeats: int = 3  # best of N timed calls
    view_images: int = 1024  # images through each view pipeline
    bank_size: int = 50_000  # kNN memory bank (train features)
    bank_queries: int = 10_000  # kNN test features
    bank_dim: int = 512
    knn_chunk: int = 1024
    probe_epochs: int = 100
    seed: int = 0
    threads: int | None = None  # torch CPU threads; None: torch's default (one per core)

    @classmethod
    def create(
        cls,
        *,
        quick: bool,
        device: str,
        methods: list[str] | None,
        backbone: str | None,
        image_size: int | None,
        threads: int | None = None,
    ) -> BenchSettings:
        """Validated settings; bad flags raise ConfigError naming the flag (exit status 2)."""
        if image_size is not None and not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
            raise ConfigError(
                "--image-size", image_size, f"an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} (pixels)"
            )
        from methods import METHODS

        if threads is not None and threads < 1:
            raise ConfigError("--threads", threads, "an integer >= 1")
        chosen = tuple(methods) if methods else tuple(METHODS)
        _check_methods(chosen)
        if backbone is not None:
            _check_backbone(backbone)
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ConfigError("--device", device, "cpu (no CUDA device is visible here)")
        base = cls(
            quick=quick,
            device=device,
            methods=chosen,
            backbone=backbone or "resnet10t",
            image_size=image_size or 16,
            threads=threads,
        )
        if quick:
            base = replace(
                base,
                backbone=backbone or "test_resnet",
                batch_size=64,
                train_limit=128,
                epochs=2,
                linear_epochs=10,
                repeats=2,
                view_images=128,
                bank_size=5_000,
                bank_queries=1_000,
                bank_dim=128,
                knn_chunk=256,
                probe_epochs=10,
                threads=threads or 1,
            )
        return base

    def trial_config(self, method: str, **overrides: Any):
        """The bench's trial config for ``method`` (a real, validated TrialConfig)."""
        from suite.config import make_config

        data = dict(
            method=method,
            backbone=self.backbone,
            dataset=self.dataset,
            image_size=self.image_size,
            batch_size=self.batch_size,
            train_limit=self.train_limit,
            epochs=self.epochs,
            linear_epochs=self.linear_epochs,
            device=self.device,
            seed=self.seed,
            eval_every=0,
        )
        data.update(overrides)
        return make_config(data)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = list(self.methods)
        return d


def _check_methods(methods: tuple[str, ...]) -> None:
    from methods import METHODS

    for name in methods:
        if name not in METHODS:
            raise ConfigError("--methods", name, sorted(METHODS))


def _check_backbone(name: str) -> None:
    from suite.config.choices import validate_backbone_name

    try:
        validate_backbone_name(name)
    except ConfigError as err:
        raise ConfigError("--backbone", name, err.allowed) from None
