"""What one bench run measures: sizes for the full run and for ``--quick``.

``--quick`` exists for the test suite and a first look: a tiny timm model on a
few hundred digits images and a 5,000-sample kNN bank, sized to finish within
60 s on 2 CPU cores. It runs torch with one thread unless ``--threads`` says
otherwise: on a shared machine, OpenMP threads that outnumber the free cores
spin against each other and made a tiny model ~15x slower on 2 threads than on 1
when another process held a core, which no ratio survives. The full run uses ``resnet10t`` at batch 256 and a
realistic 50,000 x 512 kNN bank.

On ``--device cuda`` (not ``--quick``) training uses ``digits-synth``'s whole training
split (50,000 images at 32 px, about 195 steps of 256 per epoch) for two epochs, so the
warm epoch every training figure is read from has well over 100 steps: the digits' 1,437
images would give a GPU about five steps per epoch, too few to reach its steady throughput.
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
    train_limit: int | None = 1024  # images per training epoch (None: the whole training split)
    epochs: int = 3  # the first epoch is a warm-up; figures use the best later one
    rounds: int = 3  # training: plain loop then trainer, this many times (ABAB...); ratios are their median
    linear_epochs: int = 100  # the trial default, so the evaluation figure is the real cost
    repeats: int = 3  # best of N timed calls
    view_images: int = 1024  # images through each view pipeline
    bank_size: int = 50_000  # kNN memory bank (train features)
    bank_queries: int = 10_000  # kNN test features
    bank_dim: int = 512
    knn_chunk: int = 1024
    seed: int = 0
    threads: int | None = None  # torch CPU threads; None: torch's default (one per core)
    sections: tuple[str, ...] = ()  # the sections to measure (`report.SECTIONS` order); empty: all
    sweep_scale_trials: tuple[int, ...] = (100, 1_000, 10_000)  # sweep sizes of the sweep_scale section
    sweep_scale_epochs: int = 100
    sweep_scale_window: int = 20  # trials whose every report is timed, at each size
    analysis_scale_trials: tuple[int, ...] = (1_000, 10_000)  # results sizes of the analysis_scale section

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
        sections: list[str] | None = None,
        dataset: str | None = None,
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
        if dataset is not None:
            _check_dataset(dataset)
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ConfigError("--device", device, "cpu (no CUDA device is visible here)")
        from suite.tools.bench.report import SECTIONS

        sizes = training_sizes(device, quick, dataset)
        base = cls(
            quick=quick,
            device=device,
            methods=chosen,
            backbone=backbone or "resnet10t",
            image_size=image_size or _default_image_size(sizes["dataset"]),
            threads=threads,
            sections=tuple(s for s in SECTIONS if s in set(sections)) if sections else SECTIONS,
            **sizes,
        )
        if quick:
            base = replace(
                base,
                backbone=backbone or "test_resnet",
                batch_size=64,
                train_limit=128,
                epochs=2,
                rounds=2,
                linear_epochs=10,
                repeats=2,
                view_images=128,
                bank_size=5_000,
                bank_queries=1_000,
                bank_dim=128,
                knn_chunk=256,
                threads=threads or 1,
                sweep_scale_trials=(20, 100, 500),
                sweep_scale_epochs=20,
                sweep_scale_window=5,
                analysis_scale_trials=(100, 500),
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
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        return d


def _check_methods(methods: tuple[str, ...]) -> None:
    from methods import METHODS

    for name in methods:
        if name not in METHODS:
            raise ConfigError("--methods", name, sorted(METHODS))


def training_sizes(device: str, quick: bool, dataset: str | None = None) -> dict[str, Any]:
    """The training set and epochs of a full run: on CUDA digits-synth's whole training split
    for two epochs (the warm one has about 195 steps of 256), elsewhere 1,024 digits images for
    three; ``--quick`` replaces both. ``dataset`` (``--dataset``) overrides the set."""
    if device == "cuda" and not quick:
        return {"dataset": dataset or "digits-synth", "train_limit": None, "epochs": 2}
    return {"dataset": dataset or "digits", "train_limit": 1024, "epochs": 3}


def _check_dataset(name: str) -> None:
    from suite.data.specs import validate_dataset_name

    validate_dataset_name(name, "--dataset")  # its errors name the field it is given


def _default_image_size(dataset: str) -> int:
    """The bench's view side: 16 px for the digits (upsampled 2x), else the dataset's own resolution."""
    from suite.data.specs import parse_spec

    return 16 if dataset == "digits" else parse_spec(dataset).image_size


def _check_backbone(name: str) -> None:
    from suite.config.choices import validate_backbone_name

    try:
        validate_backbone_name(name)
    except ConfigError as err:
        raise ConfigError("--backbone", name, err.allowed) from None
