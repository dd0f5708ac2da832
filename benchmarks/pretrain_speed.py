"""Speed of `grmpiqa pretrain`: one Reptile epoch, and the share spent making the tasks.

Target (issue 4): generating the distorted task images never starves training. Printed as
the ratio of task generation time to training time, both measured in this same epoch
(one process, one thread pool, the trainer the command uses). Also printed: training
cost per image (forward + backward), held-out evaluation cost, and each distortion
type's generation cost per image at the model's input size.

The model is the default GRMP-IQA (ViT-B-16 + 100 prompt tokens per layer) with random
weights from a local Hugging Face cache (``--hf-cache``, default ``$HF_HUB_CACHE``; written
with tests/fakehub.py's write_vit_b16_cache if empty): the cost is the real model's.

    python benchmarks/pretrain_speed.py --photos 12 --inner-steps 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # fakehub: the test suite's fake Hub builders
DEFAULT_LIVEC = ROOT.parent / "shared" / "data" / "livec" / "images"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--livec", type=Path, default=DEFAULT_LIVEC, help="folder of photos")
    p.add_argument("--photos", type=int, default=12, help="photos to pre-train on")
    p.add_argument("--tasks", type=int, default=None, help="first N distortion types only")
    p.add_argument("--inner-steps", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--model", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--hf-cache", type=Path, default=None)
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args()


class TimedTasks:
    """The task set the trainer sees, with the time spent in ``examples`` added up."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds = 0.0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def examples(self, task, groups, seed):
        started = time.perf_counter()
        try:
            return self.inner.examples(task, groups, seed)
        finally:
            self.seconds += time.perf_counter() - started


def main() -> None:
    args = parse_args()
    hf_cache = args.hf_cache or Path(os.environ.get("HF_HUB_CACHE", ROOT / ".bench" / "hf"))
    os.environ["HF_HUB_CACHE"] = str(hf_cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    from grmpiqa.pretraining.distortions import DISTORTIONS
    from grmpiqa.pretraining.meta import MetaTrainer, PretrainSettings, model_for_pretraining
    from grmpiqa.pretraining.tasks import SyntheticTasks, load_photos

    if not any(hf_cache.glob("models--timm--vit_base_patch16_clip_224.openai")):
        from fakehub import write_vit_b16_cache

        write_vit_b16_cache(hf_cache)
    model = model_for_pretraining(args.model, device=args.device)
    paths = sorted(str(p) for p in args.livec.iterdir())[:args.photos]
    _, pixels = load_photos(paths, model.preprocess, lambda p, why: print(f"skip {p}: {why}"))
    kinds = list(DISTORTIONS.values())[:args.tasks]
    tasks = TimedTasks(SyntheticTasks(pixels, kinds))
    settings = PretrainSettings(epochs=1, inner_steps=args.inner_steps,
                                batch_size=args.batch_size)
    eval_seconds = []

    class TimedTrainer(MetaTrainer):
        def evaluate(self, progress=None):
            started = time.perf_counter()
            try:
                return super().evaluate(progress)
            finally:
                eval_seconds.append(time.perf_counter() - started)

    trainer = TimedTrainer(model, tasks, settings)
    images = trainer.images_per_epoch(1)
    heldout_images = sum(len(e.labels) for e in trainer.heldout_sets.values())
    tasks.seconds = 0.0
    report = trainer.run_epoch(1)
    generation_s, eval_s = tasks.seconds, sum(eval_seconds)
    train_s = report.seconds - generation_s - eval_s
    trained_images = images - heldout_images

    per_type = {}
    sample = pixels[: min(8, len(pixels))].float() / 255.0
    for d in DISTORTIONS.values():  # every type, even those not trained on here
        started = time.perf_counter()
        for level in range(1, 6):
            d(sample, level, seed=level)
        per_type[d.name] = 1000 * (time.perf_counter() - started) / (5 * len(sample))

    default_steps = PretrainSettings(epochs=1, batch_size=args.batch_size)
    default_images = MetaTrainer(model, tasks.inner, default_steps).images_per_epoch(1)
    figures = {
        "threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "photos": len(pixels), "tasks": len(kinds), "inner_steps": args.inner_steps,
        "batch_size": args.batch_size,
        "epoch_s": round(report.seconds, 1),
        "generation_s": round(generation_s, 2),
        "training_s": round(train_s, 1),
        "heldout_eval_s": round(eval_s, 1),
        "generation_over_training": round(generation_s / train_s, 4),
        "train_s_per_image": round(train_s / trained_images, 3),
        "eval_s_per_image": round(eval_s / heldout_images, 3),
        "default_inner_steps_epoch_images": default_images,
        "all_types_generation_s_per_epoch": round(
            sum(per_type.values()) / 1000 * 5 * len(trainer.train_groups), 1),
        "generation_ms_per_image": {k: round(v, 1) for k, v in per_type.items()},
    }
    for key, value in figures.items():
        if key != "generation_ms_per_image":
            print(f"{key:36s} {value}")
    print("generation ms per image and level:",
          ", ".join(f"{k} {v:.1f}" for k, v in per_type.items()))
    verdict = "met" if figures["generation_over_training"] < 0.1 else "NOT met"
    print(f"target generation/training < 0.1: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
