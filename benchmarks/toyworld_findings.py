"""The study's findings on ToyWorld: run every experiment of the course in the ``cpu`` profile and score it.

Trains (or reuses, from ``runs/``) the same arms as the notebooks, samples each from the same
prompts and seeds, scores them with the ToyWorld evaluator and writes
``benchmarks/results/toyworld_findings.{json,md}``. Runs made here are reused by the notebooks
and the other way round.

    python benchmarks/toyworld_findings.py                      # every experiment (about 30 min on 2 cores)
    python benchmarks/toyworld_findings.py --only base prior_preservation --seeds 16
    python benchmarks/toyworld_findings.py --rejudge              # tables and verdicts from the saved JSON
    python benchmarks/toyworld_findings.py --train-seed 1 --only learning_rate prior_preservation ...
    python benchmarks/toyworld_findings.py --pool                 # the seeds' files pooled: *_seeds.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def previous_sampling(out: str) -> dict | None:
    """The sampling settings saved with an earlier run of this script, if any."""
    path = Path(out).with_suffix(".json")
    return json.loads(path.read_text()).get("sampling") if path.exists() else None


def save(out: Path, done: dict, sampling, train_seed: int) -> None:
    """Write the scored experiments as JSON and markdown (verdicts judged afresh).

    What is on disk now is read again first, so two processes that score different
    experiments into the same file keep each other's results.
    """
    import torch

    from helpers.profiles import get_profile
    from helpers.study import findings

    cpu = get_profile("cpu")
    path = out.with_suffix(".json")
    on_disk = {f["key"]: f for f in json.loads(path.read_text()).get("findings", [])} if path.exists() else {}
    done = {**on_disk, **done}
    ordered = [findings.Finding(**done[k]) for k in findings.EXPERIMENTS if k in done]
    for f in ordered:
        f.verdict, f.notes = findings.judge_one_seed(f.key, f.arms)
    record = {
        "what": "ToyWorld findings: the course's experiments in the cpu profile, scored by the ToyWorld evaluator",
        "sampling": dataclasses.asdict(sampling),
        "train_seed": train_seed,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_profile": {"lr_scale": cpu.lr_scale, "step_scale": cpu.step_scale},
        "findings": [dataclasses.asdict(f) for f in ordered],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    header = (f"# ToyWorld findings\n\nSampling: seeds 0-{len(sampling.seeds) - 1} per prompt, {sampling.steps} steps, "
              f"guidance {sampling.guidance}, the model's own scheduler unless the arm names one. Arms are "
              f"named by the study's learning rates and steps; the cpu profile trains them at {cpu.lr_scale:g}x the "
              f"learning rate for {cpu.step_scale:g}x the steps (helpers/profiles.py).\n\n")
    out.with_suffix(".md").write_text(header + findings.markdown_one_seed(ordered))


def pool(out: Path) -> int:
    """Pool ``<out>.json`` and ``<out>_seed<N>.json`` into ``<out>_seeds.md``: intervals over runs, verdicts."""
    from helpers.study import verdicts

    files = [out.with_suffix(".json"), *sorted(out.parent.glob(out.name + "_seed*.json"))]
    records = [json.loads(p.read_text()) for p in files if p.exists()]
    pooled = verdicts.from_records(records)
    if not pooled:
        print("No experiment scored with counts yet: run the experiments first (see --train-seed).")
        return 1
    seeds = sorted({s for f in pooled for s in f.seeds})
    fewer = [f"{f.key.replace('_', ' ')} with seed{'s' if len(f.seeds) > 1 else ''} "
             f"{', '.join(map(str, f.seeds))} only" for f in pooled if len(f.seeds) < len(seeds)]
    sampling = records[0]["sampling"]
    header = (f"# ToyWorld findings over training seeds {', '.join(map(str, seeds))}\n\n"
              "Each arm trained once per training seed"
              + (f" ({'; '.join(fewer)})" if fewer else "") + ", each sampled with seeds "
              f"0-{len(sampling['seeds']) - 1} per prompt ({sampling['steps']} steps, guidance "
              f"{sampling['guidance']}). A cell is the mean over all runs' images with its 95% interval "
              "(a bootstrap that resamples runs, then images, so run-to-run differences count); n is the "
              "images behind each cell. A verdict agrees or disagrees with the study only where the "
              "interval of the difference excludes zero.\n\n")
    target = out.parent / (out.name + "_seeds.md")
    target.write_text(header + verdicts.markdown_over_seeds(pooled))
    print(target.read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    from helpers.study import findings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(findings.EXPERIMENTS), help="run only these experiments")
    parser.add_argument("--seeds", type=int, default=8, help="images per prompt and arm (default 8)")
    parser.add_argument("--out", default=str(RESULTS / "toyworld_findings"), help="output path without suffix")
    parser.add_argument("--train-seed", type=int, default=0,
                        help="training seed of every arm (default 0, as the notebooks); other seeds write *_seed<N>.json")
    parser.add_argument("--pool", action="store_true",
                        help="pool the saved files of every training seed into *_seeds.md (intervals, verdicts)")
    parser.add_argument("--rejudge", action="store_true", help="recompute verdicts and tables from the saved JSON only")
    args = parser.parse_args(argv)
    os.environ["COURSE_PROFILE"] = "cpu"
    if args.pool:
        return pool(Path(args.out))
    sampling = findings.Sampling(seeds=tuple(range(args.seeds)))
    if args.rejudge and previous_sampling(args.out):
        sampling = findings.Sampling(**{**previous_sampling(args.out), "seeds": tuple(previous_sampling(args.out)["seeds"])})
    out = Path(args.out + (f"_seed{args.train_seed}" if args.train_seed else ""))
    keys = [] if args.rejudge else args.only or list(findings.EXPERIMENTS)
    t0 = time.perf_counter()
    scored = {}  # only what this process scored is written over what is on disk
    for key in keys:
        print(f"== {key}", flush=True)
        finding = findings.run_experiment(key, sampling, seed=args.train_seed)
        scored[key] = dataclasses.asdict(finding)
        print(findings.markdown_one_seed([finding]), flush=True)
        save(out, scored, sampling, args.train_seed)  # after each experiment: an interruption keeps what is scored
    save(out, scored, sampling, args.train_seed)
    print(f"wrote {out.with_suffix('.md').name} and .json in {(time.perf_counter() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
