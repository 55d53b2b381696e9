"""Shared machinery of all SSL methods, so each method only declares what is special.

Construction order matters for the cut-initialization intervention: the base
``__init__`` calls ``build_online()`` (heads on top of the backbone), then divides
every online parameter by C, and only then ``build_target()`` (deep copies for
momentum/teacher networks). Target networks therefore start as exact copies of
the *cut* online network, as in the paper.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import Tensor, nn

from methods.errors import config_error, field_constraints
from methods.interventions import Intervention, cut_init, grad_scale


def hparam(
    default: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    doc: str = "",
) -> Any:
    """A method hyper-parameter with an allowed range (a pydantic field)."""
    bounds = {("gt" if lo_open else "ge"): lo, ("lt" if hi_open else "le"): hi}
    return Field(default, description=doc, **{k: v for k, v in bounds.items() if v is not None})


class HParams(BaseModel):
    """Base of every method's hyper-parameters: strict types (no bool for an int,
    no string for a number), finite numbers, no unknown keys, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass
class MethodOutput:
    """What a method's forward gives the trainer, the evaluation and the instruments, by name."""

    loss: Tensor
    live_embeddings: list[Tensor]  # with autograd, per view: the vectors the loss normalizes (gradient watched)
    embedding: Tensor  # the same, detached and concatenated over the views (norm tracking)
    features: Tensor  # the backbone features of the views, detached and concatenated
    extra: dict[str, Any] = field(default_factory=dict)  # anything a method adds


def make_target(module: nn.Module) -> nn.Module:
    """A frozen deep copy (momentum encoder / teacher)."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


class SSLMethod(nn.Module):
    """Backbone + method heads + loss. Subclasses set the ClassVars and implement
    ``build_online``, ``embedding`` and ``forward`` (and ``build_target`` /
    ``target_pairs`` when they have a momentum network)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # the name in prose ("SimCLR", "Barlow Twins")
    Hparams: ClassVar[type[HParams]]
    default_optimizer: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 0.1  # per 256 images; the trainer scales lr * batch / 256
    default_weight_decay: ClassVar[float] = 5e-4
    default_warmup_epochs: ClassVar[int] = 10
    # Where the defaults come from (papers, reference code, CIFAR recipes), for the methods reference page.
    default_sources: ClassVar[str] = ""
    min_batch_size: ClassVar[int] = 2  # BatchNorm needs more than one sample
    num_global_views: ClassVar[int] = 2
    # Geometry, which the claims read: the 1/||z|| gradient law and the norm-governs-convergence
    # mechanism are claims about losses that L2-normalize the embedding, and apply only to them.
    embedding_description: ClassVar[str] = ""  # what "the embedding" is, in words
    loss_normalizes_embedding: ClassVar[bool] = True
    collapse_loss_formula: ClassVar[str] = ""  # `collapse_loss` in symbols ("ln(2B - 1)"), "" where there is none

    def __init__(
        self, backbone: nn.Module, feature_dim: int, hparams: Any = None, intervention: Intervention | None = None
    ) -> None:
        super().__init__()
        if not isinstance(hparams, self.Hparams):
            hparams = self.build_hparams(hparams)
        self.backbone = backbone
        self.feature_dim = int(feature_dim)
        self.hparams = hparams
        if intervention is not None and not isinstance(intervention, Intervention):
            raise TypeError(
                f"intervention must be an Intervention (methods.interventions.parse_intervention), "
                f"got {type(intervention).__name__}"
            )
        self.intervention = intervention or Intervention()
        self._embedding_tap: Callable[[Tensor], Tensor] | None = None
        self.build_online()
        if self.intervention.cut is not None:
            cut_init(self, self.intervention.cut)  # only online modules exist at this point
        self.build_target()

    # -- hyper-parameters -------------------------------------------------
    @classmethod
    def build_hparams(cls, method_args: dict[str, Any] | None = None) -> HParams:
        """Validate ``method_args`` against ``cls.Hparams`` and fill defaults."""
        try:
            hparams = cls.Hparams.model_validate(dict(method_args or {}))
        except ValidationError as err:
            unknown = err.errors()[0]["type"] == "extra_forbidden"
            raise config_error(
                err,
                cls.Hparams,
                prefix="method_args.",
                hint=f"unknown hyper-parameter for method {cls.name}" if unknown else "",
            ) from None
        cls.check_hparams(hparams)
        return hparams

    @classmethod
    def describe_hparams(cls) -> list[tuple[str, Any, str, str]]:
        """(name, default, allowed, doc) per hyper-parameter, for `normbench list`."""
        return [
            (name, f.default, field_constraints(cls.Hparams, name), f.description or "")
            for name, f in cls.Hparams.model_fields.items()
        ]

    @classmethod
    def check_hparams(cls, hparams: Any) -> None:
        """Cross-field checks; override when needed."""

    @classmethod
    def schedule_notes(cls, hparams: Any, epochs: int) -> list[str]:
        """Settings that make little sense for a run of ``epochs`` epochs (a warm-up longer than the run),
        said once at the start and kept in the row's notes; override when needed."""
        return []

    # -- construction hooks -----------------------------------------------
    def build_online(self) -> None:
        raise NotImplementedError

    def build_target(self) -> None:
        """Create momentum/teacher copies (none here; `MomentumMethod` has them)."""

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) module pairs updated by EMA (none here)."""
        return []

    # -- training hooks ---------------------------------------------------
    def update_target(self, progress: float) -> None:
        """Called after each optimizer step with progress = step / total_steps; nothing to update here."""

    def after_step(self, steps_done: int) -> None:
        """Called after each optimizer step (after `update_target`) with the optimizer steps taken so far in
        the run (1 after the first); schedules counted in steps (SwAV's prototype freeze) read it here."""

    def on_epoch_start(self, epoch: int, total_epochs: int) -> None:
        """Per-epoch schedules; ``epoch`` is the 0-based index of the epoch about to run."""

    def intervene(self, z: Tensor) -> Tensor:
        """GradScale at the embedding when configured, else identity; every method passes each
        embedding through here right before its loss, which is what an embedding tap sees."""
        p = self.intervention.gradscale
        z = z if p is None else grad_scale(z, p)
        return z if self._embedding_tap is None else self._embedding_tap(z)

    @contextlib.contextmanager
    def embedding_tap(self, tap: Callable[[Tensor], Tensor]) -> Iterator[None]:
        """Inside the block, every embedding the forward hands to the loss goes through ``tap``
        (after GradScale): the mechanism instruments read the embeddings there and rescale them."""
        previous, self._embedding_tap = self._embedding_tap, tap
        try:
            yield
        finally:
            self._embedding_tap = previous

    # -- geometry ---------------------------------------------------------
    def embedding_layer(self) -> nn.Module:
        """The last layer of the embedding path (a Linear with its bias): scaling its parameters
        by a scales the embedding by a. Claim C3 rescales it."""
        raise NotImplementedError

    @classmethod
    def collapse_loss(cls, hparams: Any, batch_size: int) -> float | None:
        """The loss of a collapsed network (every embedding the same), where the loss shows a
        collapse; None where it does not (a negative cosine is at its minimum at collapse too)."""
        return None

    # -- evaluation -------------------------------------------------------
    def embedding(self, features: Tensor) -> Tensor:
        """Online path from backbone features to the vector the loss normalizes."""
        raise NotImplementedError

    def embed(self, x: Tensor) -> Tensor:
        """The (online) embedding of clean inputs, at the intervention point."""
        return self.embedding(self.backbone(x))

    def encode_heads(self, features: Tensor) -> dict[str, Tensor]:
        """Evaluation outputs from backbone features in one pass: the embedding,
        plus ``projection`` where a predictor sits on a projector (the paper's
        confidence figures read the projector output)."""
        return {"embedding": self.embedding(features)}

    def online_heads(self) -> list[nn.Module]:
        """Trained modules on top of the backbone (not momentum/teacher copies)."""
        targets = {id(target) for _, target in self.target_pairs()}
        return [m for name, m in self.named_children() if name != "backbone" and id(m) not in targets]

    def check_train_size(self, num_train: int) -> list[str]:
        """Adapt settings that make no sense for this many training images (or
        raise); returns notes saying what changed, for the trials row."""
        return []

    def view_specs(self, image_size: int) -> list[Any]:
        """Augmentation recipe per view (``suite.trial.augment.AugmentSpec``)."""
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------
    def _check_views(self, views: list[Tensor], expected: int) -> None:
        if len(views) != expected:
            raise ValueError(f"{self.name} expects {expected} views, got {len(views)}")

    @staticmethod
    def _output(loss: Tensor, embeddings: list[Tensor], features: list[Tensor], **extra: Any) -> MethodOutput:
        return MethodOutput(
            loss,
            embeddings,
            torch.cat([e.detach() for e in embeddings]),
            torch.cat([f.detach() for f in features]),
            extra,
        )


class MomentumMethod(SSLMethod):
    """A method with a momentum (EMA) copy of part of its online network: MoCo's (v2, v3) key encoder, BYOL's
    target, DINO's teacher. Its hyper-parameters have ``momentum_base`` and ``momentum_final``; the copies
    are made after cut-initialization (`build_target`), so they start as the cut network."""

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        raise NotImplementedError

    def momentum(self, progress: float) -> float:
        """Cosine EMA schedule from ``momentum_base`` (progress 0) to ``momentum_final`` (progress 1)."""
        base, final = self.hparams.momentum_base, self.hparams.momentum_final
        progress = min(max(float(progress), 0.0), 1.0)
        return final - (final - base) * (math.cos(math.pi * progress) + 1.0) / 2.0

    @torch.no_grad()
    def update_target(self, progress: float) -> None:
        """EMA step target <- tau*target + (1-tau)*online, after each optimizer step."""
        tau = self.momentum(progress)
        for online, target in self.target_pairs():
            for p_online, p_target in zip(online.parameters(), target.parameters()):
                p_target.mul_(tau).add_(p_online.detach(), alpha=1.0 - tau)
