"""How a ToyWorld base model draws the bare class prompts ("a photo of a star", ...).

Prior preservation trains on these very images, so a model that draws them all alike (one
washed-out colour, one ground) gives DreamBooth a poor prior. For each class prompt this
draws 16 images (seeds 0-15, 25 steps, guidance 7.5) and prints: the share the evaluator
reads as the class, how many different colours it reads among them, and their mean HSV
saturation (0 grey, 1 pure colour).

    python benchmarks/class_prompts.py data/toyworld/model [--figure grid.png]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from helpers.figures import image_grid
from helpers.toyworld import metrics
from helpers.toyworld.subjects import SUBJECTS
from helpers.train.models import load_pipeline
from helpers.train.sampling import generate

CLASS_PROMPTS = {s.cls: s.class_prompt for s in SUBJECTS.values()}  # the course subjects' class prompts


def class_prompt_report(model: str, seeds: int = 16) -> tuple[dict, list]:
    """Per class: evaluator class accuracy, colours read and saturation; and 8 images per class, in order."""
    pipe = load_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    report, shown = {}, []
    for cls, prompt in CLASS_PROMPTS.items():
        images = generate(pipe, prompt, seeds=list(range(seeds)), num_inference_steps=25,
                          guidance_scale=7.5, progress=False).images
        preds = metrics.predict(images)
        report[cls] = {
            "n": seeds,
            "class_accuracy": round(float(np.mean([p["cls"] == cls for p in preds])), 3),
            "colours_read": len({p["colour"] for p in preds}),
            "saturation": round(float(np.mean([np.asarray(im.convert("HSV"))[..., 1].mean() / 255
                                               for im in images])), 3),
        }
        shown.extend(images[:8])
    return report, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a pipeline folder")
    parser.add_argument("--seeds", type=int, default=16, help="images per class prompt")
    parser.add_argument("--figure", default=None, help="also save 8 images per class prompt (PNG)")
    args = parser.parse_args()
    report, images = class_prompt_report(args.model, args.seeds)
    print(json.dumps({"model": args.model, "classes": report}, indent=2))
    if args.figure:
        image_grid(images, len(CLASS_PROMPTS), 8, row_labels=list(CLASS_PROMPTS.values())).save(args.figure)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
