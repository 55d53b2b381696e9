"""Each SSL method end to end on a tiny real timm backbone with 32 px inputs."""

from __future__ import annotations

import copy
import math

import pytest
import timm
import torch

from methods import METHODS, get_method
from methods.base import SSLMethod
from methods.dino import DINO
from methods.interventions import parse_intervention
from methods.moco import MoCo
from methods.nnclr import nnclr_loss
from suite.core.errors import ConfigError
from suite.trial.augment import AugmentSpec

BATCH = 4
SMALL_ARGS = {
    "simclr": dict(proj_hidden_dim=32, proj_output_dim=16),
    "moco": dict(proj_hidden_dim=32, proj_output_dim=16, queue_size=24),
    "byol": dict(proj_hidden_dim=32, proj_output_dim=16, pred_hidden_dim=32),
    "simsiam": dict(proj_hidden_dim=32, proj_output_dim=16, pred_hidden_dim=8),
    "dino": dict(head_hidden_dim=32, bottleneck_dim=16, num_prototypes=64, num_local_crops=2),
    "mocov3": dict(proj_hidden_dim=32, proj_output_dim=16, pred_hidden_dim=32),
    "nnclr": dict(proj_hidden_dim=32, proj_output_dim=16, pred_hidden_dim=32, support_size=24),
    "swav": dict(proj_hidden_dim=32, proj_output_dim=16, num_prototypes=20, num_local_crops=2),
    "barlow": dict(proj_hidden_dim=32, proj_output_dim=16),
    "vicreg": dict(proj_hidden_dim=32, proj_output_dim=16),
}


def build(name: str, intervention: str = "none", seed: int = 0, **overrides) -> SSLMethod:
    torch.manual_seed(seed)
    backbone = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    return METHODS[name](
        backbone, backbone.num_features, {**SMALL_ARGS.get(name, {}), **overrides}, parse_intervention(intervention)
    )


def make_views(model: SSLMethod, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(BATCH, 3, spec.size, spec.size, generator=g) for spec in model.view_specs(32)]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_forward_backward(name):
    model = build(name, "cut:2+gradscale:1")
    model.train()
    views = make_views(model)
    out = model(views)
    assert out.loss.ndim == 0 and math.isfinite(out.loss.item())
    emb_dim = SMALL_ARGS[name].get("bottleneck_dim") or SMALL_ARGS[name]["proj_output_dim"]
    assert out.embedding.shape == (2 * BATCH, emb_dim) and not out.embedding.requires_grad
    assert out.features.shape == (2 * BATCH, model.feature_dim) and not out.features.requires_grad
    out.loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert all(p.grad is None for p in frozen)
    backbone_grads = [p.grad for p in model.backbone.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in backbone_grads)
    assert sum(g.abs().sum().item() for g in backbone_grads) > 0
    assert len(trainable) > len(list(model.backbone.parameters()))
    model.eval()
    with torch.no_grad():
        emb = model.embed(views[0])
    assert emb.shape == (BATCH, emb_dim)
    # the "embedding" output is the vector at the intervention point: embed() of the same inputs
    model_eval = build(name)
    model_eval.eval()
    with torch.no_grad():
        out_eval = model_eval(views)
        assert torch.allclose(out_eval.embedding[:BATCH], model_eval.embed(views[0]), atol=1e-5)
        assert torch.allclose(out_eval.features[BATCH:], model_eval.backbone(views[1]), atol=1e-5)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_gradscale_changes_gradients_not_loss(name):
    views = make_views(build(name))
    plain, scaled = build(name, "none"), build(name, "gradscale:1")
    loss_plain, loss_scaled = plain(views).loss, scaled(views).loss
    assert torch.allclose(loss_plain, loss_scaled)
    loss_plain.backward()
    loss_scaled.backward()
    g_plain = torch.cat([p.grad.flatten() for p in plain.backbone.parameters()])
    g_scaled = torch.cat([p.grad.flatten() for p in scaled.backbone.parameters()])
    assert not torch.allclose(g_plain, g_scaled, rtol=1e-3)


def _tau(base: float, final: float, progress: float) -> float:
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2


@pytest.mark.parametrize(
    "name, online_target, base, final",
    [
        ("moco", [("backbone", "backbone_momentum"), ("projector", "projector_momentum")], 0.99, 0.999),
        ("byol", [("backbone", "backbone_target"), ("projector", "projector_target")], 0.99, 1.0),
        ("dino", [("backbone", "backbone_teacher"), ("head", "head_teacher")], 0.996, 1.0),
        ("mocov3", [("backbone", "backbone_momentum"), ("projector", "projector_momentum")], 0.99, 1.0),
    ],
)
def test_update_target_is_cosine_ema(name, online_target, base, final):
    model = build(name, momentum_base=base, momentum_final=final)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(make_views(model)).loss.backward()
    opt.step()  # online now differs from target
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    progress = 0.3
    model.update_target(progress)
    tau = _tau(base, final, progress)
    assert model.momentum(0.0) == pytest.approx(base) and model.momentum(1.0) == pytest.approx(final)
    changed = 0
    for online, target in online_target:
        for (name_o, _), (name_t, p_t) in zip(
            getattr(model, online).named_parameters(), getattr(model, target).named_parameters()
        ):
            o, t = before[f"{online}.{name_o}"], before[f"{target}.{name_t}"]
            assert torch.allclose(p_t, tau * t + (1 - tau) * o, atol=1e-6)
            changed += int(not torch.equal(p_t, t))
    assert changed > 0
    for n, p in model.named_parameters():  # online parameters untouched
        if p.requires_grad:
            assert torch.equal(p, before[n])


def test_the_momentum_methods_and_only_they_have_an_ema_schedule():
    from methods import METHODS
    from methods.base import MomentumMethod

    momentum = {n for n, cls in METHODS.items() if issubclass(cls, MomentumMethod)}
    assert momentum == {"moco", "byol", "dino", "mocov3"}
    for name, cls in METHODS.items():
        assert hasattr(cls, "momentum") == (name in momentum)
        assert {"momentum_base", "momentum_final"} <= set(cls.Hparams.model_fields) or name not in momentum


@pytest.mark.parametrize("name", ["simclr", "simsiam", "nnclr", "swav", "barlow", "vicreg"])
def test_update_target_noop_without_target(name):
    model = build(name)
    before = copy.deepcopy(model.state_dict())
    model.update_target(0.5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_moco_queue_holds_latest_keys():
    model = build("moco")
    views = make_views(model)
    model.train()
    model(views)
    with torch.no_grad():
        keys = torch.nn.functional.normalize(
            torch.cat([model.projector_momentum(model.backbone_momentum(v)) for v in views]), dim=1
        )
    assert torch.allclose(model.queue[: 2 * BATCH], keys, atol=1e-5)
    assert int(model.queue_ptr) == 2 * BATCH
    model(views)
    model(views)  # 3 * 8 = 24 = queue size: wraps around to 0
    assert int(model.queue_ptr) == 0
    model.eval()
    queue = model.queue.clone()
    with torch.no_grad():
        model(views)
    assert torch.equal(model.queue, queue)  # evaluation does not enqueue


def test_dino_center_and_teacher_temperature():
    model = build("dino")
    model.train()
    views = make_views(model)
    assert len(views) == 4 and views[2].shape[-1] == round(32 * 96 / 224)
    center_before = model.center.clone()
    model(views)
    with torch.no_grad():
        teacher = torch.cat([model.head_teacher(model.backbone_teacher(v))[1] for v in views[:2]])
    m = model.hparams.center_momentum
    assert torch.allclose(model.center, m * center_before + (1 - m) * teacher.mean(0, keepdim=True), atol=1e-5)
    h = model.hparams
    model.on_epoch_start(0, 100)
    assert model.teacher_temp == pytest.approx(h.warmup_teacher_temp)
    model.on_epoch_start(15, 100)
    assert model.teacher_temp == pytest.approx(h.warmup_teacher_temp + 0.5 * (h.teacher_temp - h.warmup_teacher_temp))
    model.on_epoch_start(60, 100)
    assert model.teacher_temp == pytest.approx(h.teacher_temp)


def test_dino_prototypes_are_unit_norm_and_cut_invariant():
    plain, cut = build("dino"), build("dino", "cut:5")
    x = torch.randn(3, 16, dtype=torch.float32)
    assert torch.allclose(plain.head.prototypes(x), cut.head.prototypes(x), atol=1e-5)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_view_specs_and_class_defaults(name):
    cls = get_method(name)
    model = build(name)
    specs = model.view_specs(32)
    assert all(isinstance(s, AugmentSpec) for s in specs) and specs[0].size == specs[1].size == 32
    assert cls.default_optimizer in {"sgd", "lars", "adamw"}
    assert cls.default_lr > 0 and cls.default_weight_decay >= 0 and cls.min_batch_size >= 2
    big = model.view_specs(128)
    assert big[0].blur_p > 0 and specs[0].blur_p == 0  # blur only above 64 px


def test_get_method_unknown():
    with pytest.raises(ConfigError) as err:
        get_method("simclr2")
    assert err.value.field == "method" and all(n in err.value.allowed for n in METHODS)


@pytest.mark.parametrize(
    "name, args, field",
    [
        ("simclr", {"temprature": 0.2}, "method_args.temprature"),
        ("simclr", {"temperature": 0}, "method_args.temperature"),
        ("simclr", {"temperature": "hot"}, "method_args.temperature"),
        ("simclr", {"proj_hidden_dim": 3.5}, "method_args.proj_hidden_dim"),
        ("simclr", {"proj_hidden_dim": True}, "method_args.proj_hidden_dim"),
        ("simclr", {"proj_batch_norm": 1}, "method_args.proj_batch_norm"),
        ("moco", {"queue_size": 0}, "method_args.queue_size"),
        ("byol", {"momentum_base": 1.5}, "method_args.momentum_base"),
        ("dino", {"num_local_crops": -1}, "method_args.num_local_crops"),
        ("dino", {"teacher_temp": float("nan")}, "method_args.teacher_temp"),
    ],
)
def test_hparams_validation(name, args, field):
    with pytest.raises(ConfigError) as err:
        get_method(name).build_hparams(args)
    assert err.value.field == field


def test_hparams_unknown_key_lists_allowed_and_defaults_fill():
    with pytest.raises(ConfigError) as err:
        MoCo.build_hparams({"queue": 5})
    assert "queue_size" in err.value.allowed and "temperature" in err.value.allowed
    hp = DINO.build_hparams({"student_temp": 1})  # an int is accepted for a float
    assert hp.student_temp == 1.0 and isinstance(hp.student_temp, float)
    assert hp.num_prototypes == DINO.Hparams().num_prototypes
    # a full round trip (the config stores every field) is accepted
    assert DINO.build_hparams(hp.model_dump()) == hp


def test_describe_hparams_matches_the_model():
    rows = MoCo.describe_hparams()
    assert [r[0] for r in rows] == list(MoCo.Hparams.model_fields)
    assert dict((r[0], r[2]) for r in rows)["temperature"] == "a number > 0"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_hyperparameter_says_what_it_is(name):
    """`normbench list` and the methods reference page print each description beside its key."""
    undocumented = [row[0] for row in METHODS[name].describe_hparams() if not row[3].strip()]
    assert undocumented == [], (name, undocumented)


def test_wrong_number_of_views():
    model = build("simclr")
    with pytest.raises(ValueError):
        model(make_views(model)[:1])


def test_every_method_declares_its_geometry_and_sources():
    """What the claims, the docs and the collapse checks read from each class (docs/ARCHITECTURE.md)."""
    for name, cls in METHODS.items():
        assert cls.title and cls.embedding_description and cls.default_sources, name
        hp = cls.build_hparams({})
        collapse = cls.collapse_loss(hp, 256)
        assert (collapse is None) == (cls.collapse_loss_formula == ""), name
    assert {n for n, c in METHODS.items() if not c.loss_normalizes_embedding} == {"barlow", "vicreg"}


def test_nnclr_support_set_is_a_fifo_of_view_one_projections_written_after_the_lookup():
    model = build("nnclr")
    views = make_views(model)
    model.train()
    before = model.support.clone()
    with torch.no_grad():
        z1 = model.projector(model.backbone(views[0]))
        expected_loss = nnclr_loss(
            z1, model.projector(model.backbone(views[1])), *(model.embed(v) for v in views), before, 0.2
        )
    model.train()
    out = model(views)
    # the loss read the support set as it was before this batch (an image never meets its own embedding)
    assert torch.allclose(out.loss, expected_loss, atol=1e-5)
    assert torch.allclose(model.support[:BATCH], torch.nn.functional.normalize(z1, dim=1), atol=1e-5)
    assert torch.equal(model.support[BATCH:], before[BATCH:]) and int(model.support_ptr) == BATCH
    model.eval()
    support = model.support.clone()
    with torch.no_grad():
        model(views)
    assert torch.equal(model.support, support)  # evaluation does not write


def test_nnclr_clamps_a_support_set_as_large_as_the_training_set():
    model = build("nnclr", support_size=4096)
    notes = model.check_train_size(1000)
    assert model.support.shape == (256, 16) and "clamped from 4096 to 256" in notes[0]
    assert build("nnclr", support_size=24).check_train_size(1000) == []


def test_swav_prototypes_stay_put_for_the_freeze_then_move():
    model = build("swav", freeze_prototypes_steps=2, num_local_crops=0)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5, momentum=0.9, weight_decay=1e-3)
    directions = []
    for step in range(4):
        directions.append(torch.nn.functional.normalize(model.prototypes.weight.detach(), dim=1).clone())
        out = model(make_views(model, seed=step))
        opt.zero_grad()
        out.loss.backward()
        grad = model.prototypes.weight.grad
        assert grad is not None and (grad.abs().max() == 0) == (step < 2), step  # zero, but present, while frozen
        opt.step()
        model.after_step(step + 1)
    directions.append(torch.nn.functional.normalize(model.prototypes.weight.detach(), dim=1))
    # weight decay shrinks the frozen rows but cannot turn them: the directions the layer uses do not move
    assert torch.allclose(directions[0], directions[2], atol=1e-6)
    assert not torch.allclose(directions[2], directions[4], atol=1e-4)
    assert int(model.steps_done) == 4 and "steps_done" in model.state_dict()  # resumes with the checkpoint


def test_swav_queue_fills_from_its_epoch_and_joins_the_codes_once_full():
    model = build("swav", queue_size=8, queue_start_epoch=1, num_local_crops=0)
    model.train()
    views = make_views(model)
    model.on_epoch_start(0, 3)
    model(views)
    assert int(model.queue_filled) == 0  # before queue_start_epoch nothing is written
    model.on_epoch_start(1, 3)
    with torch.no_grad():
        z = [model.projector(model.backbone(v)) for v in views[:2]]
    scores = [torch.nn.functional.normalize(e, dim=1) @ model._prototype_directions().T for e in z]
    without_queue = model.codes(scores, model._prototype_directions())
    model(views)
    assert int(model.queue_filled) == BATCH  # half full: not used yet
    assert torch.allclose(model.queue[0, :BATCH], torch.nn.functional.normalize(z[0], dim=1), atol=1e-5)
    assert torch.allclose(model.codes(scores, model._prototype_directions())[0], without_queue[0])
    model(make_views(model, seed=7))  # other images: the queue is full and differs from the batch
    assert int(model.queue_filled) == 8
    with_queue = model.codes(scores, model._prototype_directions())
    assert not torch.allclose(with_queue[0], without_queue[0], atol=1e-4)
    assert all(torch.allclose(q.sum(1), torch.ones(BATCH)) for q in with_queue)
