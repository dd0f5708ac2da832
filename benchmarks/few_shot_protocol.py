"""The paper's few-shot protocol (docs/method.md, "Adapt") on any labelled folder.

For each of ``--splits`` random splits: 80% of the images form the pool and
20% the test set; ``--n`` training images are drawn from the pool; grmpiqa's
fine-tuning runs on them, choosing its best epoch on a validation part of
those ``--n`` images only (never on the test set, unlike the authors' code);
the chosen weights are scored on the test set. Prints SRCC and PLCC per split
before and after training, and their medians.

    python benchmarks/few_shot_protocol.py ../shared/data/livec/mos.csv \\
        --root ../shared/data/livec/images --small-random-backbone --lr 0.5

``--small-random-backbone`` trains a small random-weight CLIP (written with
``tests/fakehub.py`` into a temporary Hugging Face cache): it shows that
learning works, not what the released model achieves. ``--model NAME`` uses a
manifest model instead (``HF_HUB_CACHE`` / ``GRMPIQA_MANIFEST`` as usual).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # fakehub

import numpy as np
import torch

from grmpiqa.config import LabelScale, ModelConfig, PreprocessConfig
from grmpiqa.metrics import plcc, srcc
from grmpiqa.training.adaptation import pristine_reference
from grmpiqa.training.data import centre_crops, decode_rows, split_validation
from grmpiqa.training.finetune import AdaptOptions, FewShotTrainer
from grmpiqa.training.labels import normalise_scores, read_labels, require_usable

# A 6-block ViT at 112 px (7x7 patches of 16) and a 6-block text tower: small enough for a
# CPU, deep enough that "the last third" (blocks 4 and 5) is a real subset.
SMALL_CLIP = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 224, "layers": 6, "width": 192, "patch_size": 32,
                   "head_width": 64},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2,
                 "layers": 6},
}
SMALL_GRMP = ModelConfig(visual_prompt_tokens=10, visual_prompt_depth=5)
SMALL_PREPROCESS = PreprocessConfig()  # the paper's: 244 squash, 224 crop


def small_random_model(seed: int):
    """A GRMP model with fresh prompts on a small random CLIP in a temporary Hub cache."""
    from fakehub import write_backbone
    from grmpiqa.weights.loading import build_model
    from grmpiqa.weights.manifest import parse_backbone

    cache = Path(tempfile.mkdtemp(prefix="grmpiqa-bench-hub-"))
    spec = parse_backbone("small-random", write_backbone(cache, "bench/small-random-clip",
                                                         SMALL_CLIP, seed=seed), "backbone")
    torch.manual_seed(seed)
    model = build_model(spec, SMALL_GRMP, SMALL_PREPROCESS, hf_cache=cache)
    return model, cache


@torch.no_grad()
def predict(model, pixels: torch.Tensor) -> np.ndarray:
    model.eval()
    crop = model.preprocess.crop
    return torch.cat([model.predict(centre_crops(chunk, crop)) for chunk in pixels.split(64)]
                     ).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", help="labels CSV (image and score columns)")
    parser.add_argument("--root", help="folder the image paths start from")
    parser.add_argument("--image-column")
    parser.add_argument("--score-column")
    parser.add_argument("--lower-is-better", action="store_true")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a manifest model to start from")
    source.add_argument("--small-random-backbone", action="store_true",
                        help=f"a small random CLIP: {json.dumps(SMALL_CLIP)}")
    parser.add_argument("--n", type=int, default=50, help="training images per split")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--pool", type=float, default=0.8, help="share of images in the pool")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--eval-every", type=int, help="default: the schedule's")
    parser.add_argument("--schedule", default="early", choices=("early", "authors"))
    parser.add_argument("--stop-patience", type=int, default=AdaptOptions.stop_patience,
                        help="early schedule: evaluations without gain before it stops")
    caching = parser.add_mutually_exclusive_group()
    caching.add_argument("--cache", dest="cache", action="store_true",
                         default=AdaptOptions.cache,
                         help="train from a pool of cached views (default: adapt's default, "
                              f"{'on' if AdaptOptions.cache else 'off'})")
    caching.add_argument("--no-cache", dest="cache", action="store_false",
                         help="recompute the frozen prefix every step (the authors' way)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--views", type=int, default=8, help="pooled views per image")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lambda", dest="lam", type=float, default=5.0)
    parser.add_argument("--trainable", default="full", choices=("full", "prompts"))
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    table = require_usable(read_labels(args.labels, image_column=args.image_column,
                                       score_column=args.score_column, root=args.root,
                                       lower_is_better=args.lower_is_better))
    if args.small_random_backbone:
        model, hf_cache = small_random_model(args.seed)
        start_name = "small random CLIP (benchmarks/few_shot_protocol.py SMALL_CLIP)"
    else:
        from grmpiqa.weights.loading import load_model

        model, hf_cache = load_model(args.model, device="cpu"), None
        start_name = args.model
    tick = time.perf_counter()
    pixels, problems = decode_rows(table.rows, model.preprocess, workers=0)
    require_usable(table, problems)
    decode_seconds = time.perf_counter() - tick
    scores = np.asarray(table.scores, dtype=np.float64)
    oriented = scores if table.higher_is_better else -scores
    options = AdaptOptions(trainable=args.trainable, lam=args.lam, epochs=args.epochs,
                           lr=args.lr, seed=args.seed, val_fraction=args.val_fraction,
                           eval_every=args.eval_every, schedule=args.schedule,
                           stop_patience=args.stop_patience,
                           cache=args.cache, precision=args.precision, views=args.views)
    start_state = {k: v.clone() for k, v in model.state_dict().items()}
    _, teacher = pristine_reference(model, args.trainable, args.lam > 0, hf_cache)

    n = len(table.rows)
    print(f"{start_name}; {n} images, {args.splits} splits: pool {args.pool:.0%}, "
          f"{args.n} training images (validation {args.val_fraction:.0%} of them), test the "
          f"rest; {args.epochs} epochs max, lr {args.lr:g}, lambda {args.lam:g}, "
          f"{args.trainable}, {args.schedule} schedule"
          f"{f' (patience {args.stop_patience})' if args.schedule == 'early' else ''}, "
          f"{f'{args.views} cached views' if args.cache else 'no cache'}, "
          f"precision {args.precision}")
    print(f"{'split':>5} {'test':>5} {'SRCC before':>11} {'PLCC before':>11} "
          f"{'SRCC':>7} {'PLCC':>7} {'val SRCC':>8} {'best epoch':>10} {'seconds':>8}")
    rows = []
    for split in range(args.splits):
        rng = np.random.default_rng(args.seed + split)
        order = rng.permutation(n)
        cut = int(n * args.pool)
        pool, test = order[:cut], np.sort(order[cut:])
        train = np.sort(rng.choice(pool, size=args.n, replace=False))
        model.load_state_dict(start_state)
        scale = LabelScale(float(scores[train].min()), float(scores[train].max()),
                           table.higher_is_better)
        targets = normalise_scores(scores[train].tolist(), scale)
        fit, val = split_validation(targets, args.val_fraction, args.seed + split)
        before = predict(model, pixels[torch.as_tensor(test)])
        tick = time.perf_counter()
        trainer = FewShotTrainer(model, pixels[torch.as_tensor(train)], targets, fit, val,
                                 dataclasses.replace(options, seed=args.seed + split),
                                 teacher=teacher)
        state = trainer.run()
        trainer.restore_best()
        after = predict(model, pixels[torch.as_tensor(test)])
        row = {"split": split, "test": len(test),
               "srcc_before": srcc(before, oriented[test]),
               "plcc_before": plcc(before, oriented[test]),
               "srcc": srcc(after, oriented[test]), "plcc": plcc(after, oriented[test]),
               "val_srcc": state.best_srcc, "best_epoch": state.best_epoch,
               "epochs": state.epoch,
               "seconds": time.perf_counter() - tick}
        rows.append(row)
        print(f"{split:>5} {row['test']:>5} {row['srcc_before']:>11.4f} "
              f"{row['plcc_before']:>11.4f} {row['srcc']:>7.4f} {row['plcc']:>7.4f} "
              f"{row['val_srcc'] if row['val_srcc'] is not None else float('nan'):>8.4f} "
              f"{row['best_epoch']:>10} {row['seconds']:>8.1f}", flush=True)
    summary = {key: statistics.median(r[key] for r in rows)
               for key in ("srcc_before", "plcc_before", "srcc", "plcc")}
    print(f"median over {len(rows)} splits: SRCC {summary['srcc_before']:.4f} -> "
          f"{summary['srcc']:.4f}, PLCC {summary['plcc_before']:.4f} -> {summary['plcc']:.4f} "
          f"(before -> after training); decoding took {decode_seconds:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"start": start_name, "args": vars(args), "splits": rows, "median": summary},
            indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
