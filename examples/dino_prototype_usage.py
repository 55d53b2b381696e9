"""How many of its prototypes a trained DINO teacher uses: tells a healthy low loss from collapse.

DINO has two collapses. Uniform outputs give the loss ln K (K prototypes); every image
on one prototype gives a loss near 0. A loss alone cannot tell either from a sharp,
diverse assignment, so this loads each DINO trial's last checkpoint and computes the
teacher's targets on the clean test images (as training does: centred and sharpened, or
Sinkhorn-Knopp with `centering: sinkhorn`, the test set as one batch). It reports the
number of distinct argmax prototypes and the largest share of images on one prototype
(one-prototype collapse: 1 and 1.0), the mean per-image target entropy (uniform collapse:
ln K; a confident teacher: far below), and the entropy of the mean target (ln K when every
prototype is used equally). With Sinkhorn the targets are spread over prototypes by
construction, so the argmax of the teacher's raw logits is reported too.

    python examples/dino_prototype_usage.py results/reference/digits-reference [--csv OUT]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import torch

from suite.config import load_config
from suite.trial import checkpoint
from suite.trial.augment import normalize
from suite.trial.train import build_model, load_data


@torch.no_grad()
def prototype_usage(trial_dir: Path) -> dict:
    cfg = load_config(trial_dir / "config.yaml")
    model = build_model(cfg)
    model.load_state_dict(checkpoint.read(trial_dir / "checkpoints" / "last")["model"])
    model.eval()
    splits = load_data(cfg)
    x = normalize(splits.test_images, splits.mean, splits.std)
    logits = model.head_teacher(model.backbone_teacher(x))[1]
    model.on_epoch_start(cfg.epochs, cfg.epochs)  # the teacher temperature of the last epoch
    probs = model.teacher_targets([logits])[0]
    counts = torch.bincount(probs.argmax(dim=-1), minlength=probs.shape[1])
    mean = probs.mean(dim=0)
    per_image_entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=1)
    return {
        "trial_id": cfg.trial_id,
        "intervention": cfg.intervention.to_spec(),
        "imbalance": cfg.imbalance,
        "seed": cfg.seed,
        "centering": model.hparams.centering,
        "prototypes": probs.shape[1],
        "test_images": len(x),
        "distinct_argmax_prototypes": int((counts > 0).sum()),
        "largest_share": float(counts.max() / len(x)),
        "distinct_argmax_raw_logits": int(logits.argmax(dim=-1).unique().numel()),
        "mean_target_entropy": float(per_image_entropy.mean()),
        "entropy_of_mean_target": float(-(mean * mean.clamp_min(1e-12).log()).sum()),
        "ln_prototypes": math.log(probs.shape[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    dirs = sorted(d for d in args.results_dir.glob("dino-*") if (d / "checkpoints" / "last").is_dir())
    if not dirs:
        parser.error(f"results_dir: no DINO trial with a checkpoint under {args.results_dir}")
    table = pd.DataFrame([prototype_usage(d) for d in dirs])
    print(table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
