"""The ToyWorld evaluator: a small multi-head CNN that says what a 64 px image shows.

It plays the part of the DreamBooth paper's CLIP and DINO judges. Heads: class, colour
(hair colour for faces), background, subject (none or one of the four subjects, recognised
by their unique feature) and, for faces, glasses and hat. Its penultimate layer is an
embedding for similarity metrics. It is trained on fresh renders, including the subject
features the base model never sees, with blur and noise so that it also reads the
slightly soft images a diffusion model makes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.toyworld import feature_check, subjects, world
from helpers.toyworld import world as w
from helpers.train.models import load_pipeline
from helpers.train.sampling import use_scheduler

HEADS: dict[str, tuple] = {
    "cls": world.CLASSES,
    "colour": tuple(world.COLOURS),
    "background": world.BACKGROUNDS,
    "subject": subjects.SUBJECT_IDS,
    "glasses": (False, True),
    "hat": (False, True),
}
FACE_ONLY = ("glasses", "hat")  # heads that only mean something for faces
POOL_SEEDS = 5_000_000  # training renders start here; evaluation renders at EVAL_SEEDS
EVAL_SEEDS = 6_000_000
STAGE_SEEDS = (POOL_SEEDS, POOL_SEEDS + 500_000, EVAL_SEEDS + 200_000)  # first training seed of stages 1, 2, 3
EMBED_DIM = 128
EYEPATCH_PARTS = 0.4  # share of the face subjects drawn without the strap, and of face look-alikes with the strap only


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Evaluator(nn.Module):
    """A six-layer CNN with one linear head per attribute."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(3, w, 2),  # 64 -> 32: a stride-2 3x3 still sees every pixel
            _block(w, 2 * w, 1),
            _block(2 * w, 4 * w, 2),  # 32 -> 16
            _block(4 * w, 4 * w, 1),
            _block(4 * w, 8 * w, 2),  # 16 -> 8
            _block(8 * w, 8 * w, 1),
        )
        self.embedding = nn.Linear(8 * w, EMBED_DIM)
        self.heads = nn.ModuleDict({k: nn.Linear(EMBED_DIM, len(v)) for k, v in HEADS.items()})

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate-layer embedding ``(n, 128)`` of images in [-1, 1]."""
        return self.embedding(self.features(x).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per head."""
        h = F.relu(self.embed(x))
        return {k: head(h) for k, head in self.heads.items()}


def to_batch(images: list) -> torch.Tensor:
    """PIL images (any size) to a ``(n, 3, 64, 64)`` tensor in [-1, 1]."""
    arrays = []
    for im in images:
        im = im.convert("RGB")
        if im.size != (world.IMAGE_SIZE, world.IMAGE_SIZE):
            im = im.resize((world.IMAGE_SIZE, world.IMAGE_SIZE), 1)  # 1 = LANCZOS
        arrays.append(np.asarray(im))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1


def training_scene(seed: int) -> dict:
    """A scene for evaluator training: random world scenes, subjects (some recoloured) and look-alikes.

    Some faces show one part of the eyepatch only: subjects the patch without its strap, look-alikes
    the strap without the patch (the eye shows), so that the subject head learns the patch.
    """
    rng = np.random.default_rng([seed, 271])
    kind = rng.random()
    if kind < 0.55:
        return world.sample_scene(seed)
    name = str(rng.choice(list(subjects.SUBJECTS)))
    bg = str(rng.choice(world.BACKGROUNDS))
    scene = subjects.subject_scene(name, seed, bg)
    if rng.random() < 0.3:  # the feature identifies the subject, whatever else changes
        scene["colour"] = str(rng.choice(list(world.COLOURS)))
        if scene["cls"] == "face":
            other = world.make_scene("face", scene["colour"], bg, seed=seed)
            scene.update({k: other[k] for k in ("skin", "hair_style", "eyes", "mouth", "glasses", "hat")})
    if kind > 0.85:  # a look-alike: everything but the feature
        scene.update(pattern="none", mark="none", subject="none")
    if scene["cls"] == "face" and rng.random() < EYEPATCH_PARTS:
        # the patch over the eye makes the subject, not the thin strap a generation often loses
        scene["mark"] = "patch" if scene["subject"] != "none" else "strap"
    return scene


def labels(scene: dict) -> dict[str, int]:
    """The index of the scene's value in each head."""
    return {k: list(v).index(scene[k]) for k, v in HEADS.items()}


def render_pool(start: int, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render training scenes ``start .. start+n-1``; returns uint8 images and label arrays."""
    images = np.empty((n, world.IMAGE_SIZE, world.IMAGE_SIZE, 3), np.uint8)
    ys = {k: np.empty(n, np.int64) for k in HEADS}
    is_face = np.empty(n, bool)
    for i in range(n):
        scene = training_scene(start + i)
        images[i] = np.asarray(world.render(scene))
        for k, v in labels(scene).items():
            ys[k][i] = v
        is_face[i] = scene["cls"] == "face"
    ys["is_face"] = is_face
    return images, ys


def pool_scenes(start: int, n: int) -> list[dict]:
    """The scenes behind :func:`render_pool` (same seeds), without rendering them."""
    return [training_scene(start + i) for i in range(n)]


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    """A 5x5 Gaussian kernel for depthwise blur of RGB images."""
    ax = torch.arange(-2, 3, dtype=torch.float32)
    k1 = torch.exp(-(ax**2) / (2 * sigma**2))
    k2 = torch.outer(k1, k1)
    return (k2 / k2.sum()).expand(3, 1, 5, 5).contiguous()


def wash_out(x: torch.Tensor, gen: torch.Generator, strength: float) -> torch.Tensor:
    """Desaturate half the images (by up to 0.4) and pull them towards a random flat colour (by up to ``strength``).

    A model asked for something its captions never left open ("a photo of a cube": no colour,
    no place) draws it washed out, on a greyish or lavender ground, as the model pretrained on
    full captions only did; generations can also come out duller than renders. The features
    and the shape stay, and so do the labels: a washed-out red star is still a red star.
    """
    n = len(x)
    picked = (torch.rand(n, 1, 1, 1, generator=gen) < 0.5).float()
    grey = x.mean(1, keepdim=True)
    desaturate = torch.rand(n, 1, 1, 1, generator=gen) * 0.4 * picked
    x = x + (grey - x) * desaturate
    cast = torch.rand(n, 3, 1, 1, generator=gen) * 1.2 - 0.4  # greys, pastels, lavender
    alpha = torch.rand(n, 1, 1, 1, generator=gen) * strength * picked
    return x + (cast - x) * alpha


def augment(x: torch.Tensor, gen: torch.Generator, wash: float = 0.0) -> torch.Tensor:
    """Blur half the batch, add noise and a little brightness/contrast change (generations are soft).

    ``wash`` > 0 also washes half the images out (:func:`wash_out`).
    """
    n = len(x)
    if wash > 0:
        x = wash_out(x, gen, wash)
    sigma = float(torch.empty(1).uniform_(0.5, 1.3, generator=gen))
    half = torch.rand(n, generator=gen) < 0.5
    if half.any():
        x = x.clone()
        x[half] = F.conv2d(F.pad(x[half], (2, 2, 2, 2), mode="replicate"), _gaussian_kernel(sigma), groups=3)
    scale = 1 + 0.1 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    shift = 0.1 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    noise = torch.randn(x.shape, generator=gen) * 0.04 * torch.rand(n, 1, 1, 1, generator=gen)
    return (x * scale + shift + noise).clamp(-1, 1)


def loss_fn(logits: dict[str, torch.Tensor], y: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of cross-entropies; face-only heads count on faces only."""
    total = 0.0
    for k in HEADS:
        if k in FACE_ONLY:
            mask = y["is_face"]
            if mask.any():
                total = total + F.cross_entropy(logits[k][mask], y[k][mask])
        else:
            total = total + F.cross_entropy(logits[k], y[k])
    return total


@torch.no_grad()
def accuracy(model: Evaluator, images: np.ndarray, ys: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracy per head on rendered images (face-only heads on faces), plus subject recall."""
    model.eval()
    preds = {k: [] for k in HEADS}
    for i in range(0, len(images), 256):
        x = torch.from_numpy(images[i : i + 256]).permute(0, 3, 1, 2).float() / 127.5 - 1
        for k, v in model(x).items():
            preds[k].append(v.argmax(1).numpy())
    out = {}
    for k in HEADS:
        p = np.concatenate(preds[k])
        mask = ys["is_face"] if k in FACE_ONLY else np.ones(len(p), bool)
        out[k] = float((p[mask] == ys[k][mask]).mean())
    subj = ys["subject"] > 0
    out["subject_recall"] = float((np.concatenate(preds["subject"])[subj] == ys["subject"][subj]).mean())
    return out


def reconstruct(images: np.ndarray, vae, batch: int = 100) -> np.ndarray:
    """uint8 images passed through a VAE (encode, decode), as every generation of that model is."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1
            y = vae.decode(vae.encode(x).latent_dist.mean).sample
            out.append(((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


SUBJECT_STRENGTH = (0.05, 0.12)  # redraw strengths for subjects: low, so that their feature survives
OTHER_STRENGTH = (0.2, 0.6)


def redraw(images: np.ndarray, scenes: list[dict], model_dir: str | Path, seed: int = 0,
           batch: int = 64, steps: int = 25, guidance: float = 7.5) -> np.ndarray:
    """uint8 images redrawn by a ToyWorld model (img2img, the scene's caption as prompt).

    The model keeps the layout and the labels of each render but paints it in its own style:
    its textures, blur and colour casts, i.e. what its generations look like. Subjects get a
    low strength, since the model has never seen their features and would paint them over.
    """
    from diffusers import StableDiffusionImg2ImgPipeline
    from PIL import Image
    from tqdm.auto import tqdm

    pipe = StableDiffusionImg2ImgPipeline(**load_pipeline(str(model_dir)).components)
    use_scheduler(pipe, "pndm")  # PNDM's artefacts are the harshest of the samplers: the evaluator learns them all
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng([seed, 977])
    is_subject = np.array([s.get("subject", "none") != "none" for s in scenes])
    lo_hi = np.where(is_subject[:, None], SUBJECT_STRENGTH, OTHER_STRENGTH)
    strength = np.round(rng.uniform(lo_hi[:, 0], lo_hi[:, 1]) * 20) / 20  # 0.05 bins, batched together
    out = images.copy()
    order = np.argsort(strength, kind="stable")
    chunks = [order[i : i + batch] for i in range(0, len(order), batch)]
    for chunk in tqdm(chunks, desc="redraw", mininterval=20):
        for value in np.unique(strength[chunk]):
            idx = chunk[strength[chunk] == value]
            gen = torch.Generator().manual_seed(int(seed * 1_000_003 + idx[0]))
            result = pipe(
                [w.caption(scenes[i]) for i in idx],
                image=[Image.fromarray(images[i]) for i in idx],
                strength=float(value),
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=gen,
            ).images
            out[idx] = np.stack([np.asarray(im) for im in result])
    return out


def label_by_pixels(
    recon: np.ndarray, ys: dict[str, np.ndarray], scenes: list[dict]
) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Subject labels for reconstructions, decided by the pixel check (:mod:`.feature_check`).

    A reconstructed subject keeps its label only where the check still sees its feature; where
    the autoencoder lost it, the image is labelled "none", as a person would call it. Recoloured
    subjects are left out of the reconstructed copy, since the check finds objects by the
    subject's own colour. Returns the kept images, their labels and counts for the report.
    """
    keep = np.ones(len(recon), bool)
    subject = ys["subject"].copy()
    counts = {"subjects": 0, "feature_kept": 0, "feature_lost": 0, "recoloured_left_out": 0}
    for i, scene in enumerate(scenes):
        name = scene.get("subject", "none")
        if name == "none":
            continue
        counts["subjects"] += 1
        if scene["colour"] != subjects.SUBJECTS[name].attrs["colour"]:
            keep[i] = False
            counts["recoloured_left_out"] += 1
        elif feature_check.check(recon[i], name).visible:
            counts["feature_kept"] += 1
        else:
            subject[i] = 0  # HEADS["subject"][0] is "none"
            counts["feature_lost"] += 1
    labels_out = {k: (subject if k == "subject" else v)[keep] for k, v in ys.items()}
    return recon[keep], labels_out, counts


@dataclass
class EvaluatorTraining:
    """How one evaluator training run goes: its size, learning rate, seed and what joins the render pool.

    Args:
        steps, batch, pool, lr, seed: the usual; ``pool`` renders are made once and augmented.
        redraw_model: if given, the pool also holds every render redrawn by this pipeline
            (:func:`redraw`), so the evaluator learns the model's own style.
        pixel_labels: label the VAE's reconstructions by what they show (:func:`label_by_pixels`)
            instead of by the scene they were rendered from, so that a reconstruction that lost
            the subject's feature teaches "no subject", never "this distortion is the subject".
        wash: how far :func:`wash_out` may pull images towards a flat colour (0: not at all).
    """

    steps: int = 3000
    batch: int = 64
    pool: int = 20000
    lr: float = 2e-3
    seed: int = 0
    log_every: int = 200
    redraw_model: str | Path | None = None
    pixel_labels: bool = False
    wash: float = 0.0


def _first_pool_seed(cfg: EvaluatorTraining, vae) -> int:
    """The first render seed of the run's pool: fresh renders for each stage, never the evaluation's."""
    stage = 2 if cfg.redraw_model is not None else 1 if vae is not None else 0
    return STAGE_SEEDS[stage] + cfg.seed * cfg.pool


def _training_pool(
    cfg: EvaluatorTraining, vae, first: int
) -> tuple[np.ndarray, dict[str, np.ndarray], dict | None]:
    """The renders plus their copies through ``vae`` and ``cfg.redraw_model``, their labels and relabelling counts."""
    renders, ys = render_pool(first, cfg.pool)
    scenes = pool_scenes(first, cfg.pool) if cfg.pixel_labels or cfg.redraw_model is not None else None
    copies, labels_of = [renders], [ys]
    relabelled = None
    if vae is not None:
        recon = reconstruct(renders, vae.eval())
        recon_ys = ys
        if cfg.pixel_labels:
            recon, recon_ys, relabelled = label_by_pixels(recon, ys, scenes)
        copies.append(recon)
        labels_of.append(recon_ys)
    if cfg.redraw_model is not None:
        copies.append(redraw(renders, scenes, cfg.redraw_model, cfg.seed))
        labels_of.append(ys)
    merged = {k: np.concatenate([y[k] for y in labels_of]) for k in ys}
    return np.concatenate(copies), merged, relabelled


def _fit(model: Evaluator, images: np.ndarray, ys: dict[str, np.ndarray], cfg: EvaluatorTraining) -> None:
    """AdamW with a one-cycle LR on random augmented batches of the pool, in place."""
    from tqdm.auto import tqdm

    x_all = torch.from_numpy(images).permute(0, 3, 1, 2)
    y_all = {k: torch.from_numpy(v) for k, v in ys.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    bar = tqdm(range(cfg.steps), desc="evaluator", mininterval=20)
    for step in bar:
        idx = torch.randint(0, len(x_all), (cfg.batch,), generator=gen)
        x = augment(x_all[idx].float() / 127.5 - 1, gen, cfg.wash)
        loss = loss_fn(model(x), {k: v[idx] for k, v in y_all.items()})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % cfg.log_every == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")


def train(
    cfg: EvaluatorTraining | None = None, init: Evaluator | None = None, vae=None
) -> tuple[Evaluator, dict]:
    """Train (or fine-tune) an evaluator on a pool of fresh renders; returns the model and facts.

    Args:
        cfg: the run's settings (:class:`EvaluatorTraining`); None: the defaults.
        init: an evaluator to fine-tune; None starts from scratch.
        vae: if given, the pool also holds every render passed through this VAE, so the evaluator
            reads that model's generations as well as clean renders.
    """
    cfg = cfg or EvaluatorTraining()
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    first = _first_pool_seed(cfg, vae)
    images, ys, relabelled = _training_pool(cfg, vae, first)
    render_s = time.time() - t0
    model = init if init is not None else Evaluator()
    _fit(model, images, ys, cfg)
    facts = {
        "steps": cfg.steps,
        "batch": cfg.batch,
        "pool": cfg.pool,
        "first_seed": first,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "through_vae": vae is not None,
        "redrawn_by": str(cfg.redraw_model) if cfg.redraw_model is not None else None,
        "pixel_labels": relabelled,
        "wash": cfg.wash,
        "fine_tuned": init is not None,
        "render_seconds": round(render_s, 1),
        "train_seconds": round(time.time() - t0 - render_s, 1),
    }
    return model.eval(), facts


def save(model: Evaluator, out_dir: str | Path, report: dict) -> None:
    """Write ``evaluator.safetensors`` and ``report.json`` (labels, accuracy, training facts)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / "evaluator.safetensors")
    )
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")


def load(folder: str | Path) -> Evaluator:
    """Load evaluator weights from ``folder/evaluator.safetensors`` (eval mode, CPU)."""
    from safetensors.torch import load_file

    model = Evaluator()
    model.load_state_dict(load_file(str(Path(folder) / "evaluator.safetensors")))
    return model.eval()


def _load_pipeline_vae(vae_dir: str | Path | None):
    """The VAE of the pipeline folder ``vae_dir``, or None when there is none."""
    if vae_dir is None:
        return None
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(str(vae_dir), subfolder="vae", use_safetensors=True)


def _earlier_stages(init_dir: str | Path | None) -> list[dict]:
    """The training facts of every stage behind the evaluator saved in ``init_dir`` (empty: none)."""
    if init_dir is None or not (Path(init_dir) / "report.json").exists():
        return []
    previous = json.loads((Path(init_dir) / "report.json").read_text())
    return previous.get("stages", []) + [previous["training"]]


def _accuracy_through(
    model: Evaluator, images: np.ndarray, ys: dict[str, np.ndarray], vae=None, vae_dir: str | Path | None = None,
    redraw_dir: str | Path | None = None, n_redrawn_eval: int = 1000, seed: int = 0,
) -> dict:
    """The report's accuracies on the evaluation renders passed through ``vae`` and redrawn by ``redraw_dir``."""
    report = {}
    if vae is not None:
        report["accuracy_through_vae"] = accuracy(model, reconstruct(images, vae), ys)
        report["vae"] = str(vae_dir)
    if redraw_dir is not None:
        n = min(n_redrawn_eval, len(images))
        redrawn = redraw(images[:n], pool_scenes(EVAL_SEEDS, n), redraw_dir, seed=seed + 1)
        report["accuracy_redrawn"] = accuracy(model, redrawn, {k: v[:n] for k, v in ys.items()})
        report["redrawn_by"] = str(redraw_dir)
    return report


def train_and_save(
    out_dir: str | Path,
    steps: int | None = None,
    seed: int = 0,
    n_eval: int = 3000,
    init_dir: str | Path | None = None,
    vae_dir: str | Path | None = None,
    lr: float | None = None,
    pool: int | None = None,
    redraw_dir: str | Path | None = None,
    n_redrawn_eval: int = 1000,
    pixel_labels: bool = False,
    wash: float = 0.0,
) -> dict:
    """Train, measure accuracy on fresh renders (seeds never used in training) and save; returns the report.

    Args:
        out_dir: where to write ``evaluator.safetensors`` and ``report.json``.
        steps: training steps (3000 from scratch, 1000 when fine-tuning).
        init_dir: fine-tune the evaluator saved there instead of starting from scratch.
        vae_dir: a pipeline folder whose VAE the evaluator should learn to read through.
        lr, pool: learning rate and pool size (defaults: 2e-3 and 20,000 from scratch; 5e-4 and 6,000 fine-tuning).
        redraw_dir: a pipeline folder whose img2img redraws of the renders join the training pool;
            accuracy is then also measured on ``n_redrawn_eval`` evaluation renders redrawn by it.
        pixel_labels: label the reconstructions through ``vae_dir`` by the pixel check (see :class:`EvaluatorTraining`).
        wash: washed-out augmentation strength (see :class:`EvaluatorTraining`).
    """
    vae = _load_pipeline_vae(vae_dir)
    init = load(init_dir) if init_dir is not None else None
    tuning = init is not None
    cfg = EvaluatorTraining(
        steps=steps or (1000 if tuning else 3000),
        lr=lr or (5e-4 if tuning else 2e-3),
        pool=pool or (6000 if tuning else 20000),
        seed=seed,
        redraw_model=redraw_dir,
        pixel_labels=pixel_labels,
        wash=wash,
    )
    stages = _earlier_stages(init_dir)
    model, facts = train(cfg, init=init, vae=vae)
    images, ys = render_pool(EVAL_SEEDS, n_eval)
    report = {
        "what": "ToyWorld evaluator: multi-head CNN, generated by the kit (python -m helpers toyworld train-evaluator)",
        "licence": "Apache-2.0",
        "heads": {k: [str(x) for x in v] for k, v in HEADS.items()},
        "accuracy": accuracy(model, images, ys),
        "accuracy_on": f"{n_eval} fresh renders (evaluator.training_scene seeds {EVAL_SEEDS}..), faces only for "
        "glasses and hat",
        "training": facts,
        "stages": stages,
    }
    report.update(_accuracy_through(model, images, ys, vae, vae_dir, redraw_dir, n_redrawn_eval, seed))
    save(model, out_dir, report)
    return report
