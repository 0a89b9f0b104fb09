"""An autoencoder for ToyWorld that draws any small picture, not only what the captions name.

Stable Diffusion's autoencoder was trained on far more images than its UNet's captions
describe, so it can draw a subject the UNet has never seen. ToyWorld's counterpart is trained
here on a broad procedural distribution (:func:`broad_image`): one to three shapes or faces at
many sizes, in any colour, plain or patterned with dots, checks or stripes at many scales,
eyepatches included, over the pretraining backgrounds or over solid colours, gradients, colour
noise and patterned walls. The pretraining captions name none of the patterns, so the UNet and
text encoder still never see a subject's feature; only the pixels can show it.

:class:`AutoencoderTrainer` runs the recipe (seeded, resumable from its checkpoint, with a
progress bar). It trains on 32 px crops, which is cheap, then goes on from those weights
(``init_dir``) on whole 64 px images: a VAE trained on crops alone redraws whole images
about twice as badly, since its normalisation and attention only saw part of a picture.
:func:`autoencoder_error` measures how well a VAE redraws the subjects' photos
and fresh pretraining renders (``python -m helpers toyworld ae-error MODEL``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from helpers.errors import LearnerError
from helpers.toyworld import world
from helpers.toyworld.checkpoint import load_state, save_state
from helpers.toyworld.subjects import SUBJECTS, instance_images
from helpers.train.data import to_tensor

log = logging.getLogger(__name__)

FRESH_SEEDS = 8_000_000  # pretraining scenes for measuring: the recipe trains on seeds below 16,000
BROAD_BACKGROUNDS = world.BACKGROUNDS + ("solid", "gradient", "noise", "pattern")
WORLD_SHARE = 0.3  # share of broad images that are a pretraining-style scene with a random feature


# ---- the broad distribution ---------------------------------------------------------------


def _random_rgb(rng: np.random.Generator) -> tuple[int, int, int]:
    """A colour: half the time a named ToyWorld colour, otherwise any RGB value."""
    if rng.random() < 0.5:
        return world.COLOURS[str(rng.choice(list(world.COLOURS)))]
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _pattern_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Stripes, checks or dots in two random colours, at a random period and angle."""
    a, b = np.array(_random_rgb(rng), float), np.array(_random_rgb(rng), float)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    theta = rng.uniform(0, math.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    v = -xx * math.sin(theta) + yy * math.cos(theta)
    period = rng.uniform(4, 24)
    kind = rng.integers(3)
    if kind == 0:
        on = (u / period) % 1 < 0.5
    elif kind == 1:
        on = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    else:
        du, dv = (u / period) % 1 - 0.5, (v / period) % 1 - 0.5
        on = du**2 + dv**2 < rng.uniform(0.04, 0.16)
    return np.where(on[..., None], a, b)


def broad_background(kind: str, rng: np.random.Generator, size: int = world.IMAGE_SIZE) -> np.ndarray:
    """A background of :data:`BROAD_BACKGROUNDS` as a float ``(size, size, 3)`` array in 0..255."""
    if kind in world.BACKGROUNDS:
        return world.background(kind, rng, size)
    if kind == "solid":
        img = np.broadcast_to(np.array(_random_rgb(rng), float), (size, size, 3)).copy()
    elif kind == "gradient":
        yy, xx = np.mgrid[0:size, 0:size] / size
        theta = rng.uniform(0, 2 * math.pi)
        t = np.clip((xx - 0.5) * math.cos(theta) + (yy - 0.5) * math.sin(theta) + 0.5, 0, 1)[..., None]
        img = np.array(_random_rgb(rng), float) * (1 - t) + np.array(_random_rgb(rng), float) * t
    elif kind == "noise":  # smooth colour noise: two colours mixed by a blurred random field
        field_ = world._smooth(rng.normal(size=(size, size)), int(rng.integers(1, 12)))
        t = np.clip(0.5 + field_ / (4 * field_.std() + 1e-6), 0, 1)[..., None]
        img = np.array(_random_rgb(rng), float) * (1 - t) + np.array(_random_rgb(rng), float) * t
    elif kind == "pattern":
        img = _pattern_background(rng, size)
    else:
        raise ValueError(f"Unknown background {kind!r}; choose one of {BROAD_BACKGROUNDS}")
    grain = rng.choice([0.0, 0.0, rng.uniform(1, 8)])  # sometimes pixel noise, as on the pretraining textures
    return np.clip(img + grain * rng.normal(size=(size, size, 1)), 0, 255)


def _broad_object(rng: np.random.Generator, seed: int) -> dict:
    """One object or face with any colour, pattern, size, place and angle."""
    cls = str(rng.choice(world.CLASSES))
    face = cls == "face"
    scene = world.make_scene(cls, "red", "plain", seed=seed)
    scene.update(
        colour=_random_rgb(rng),
        size=float(rng.uniform(0.15, 0.95)),
        x=float(rng.uniform(0.2, 0.8)),
        y=float(rng.uniform(0.2, 0.8)),
        angle=float(rng.uniform(-40, 40) if face else rng.uniform(-180, 180)),
        pattern=str(rng.choice(world.PATTERNS)) if not face else "none",
        pattern_colour=_random_rgb(rng),
        pattern_scale=float(rng.uniform(0.4, 1.8)),
    )
    if face:
        skin = rng.random() < 0.7
        scene["skin"] = str(rng.choice(list(world.SKIN_TONES))) if skin else _random_rgb(rng)
        scene["mark"] = "eyepatch" if rng.random() < 0.3 else "none"
    return scene


def _world_scene(rng: np.random.Generator, seed: int) -> dict:
    """A pretraining-style scene (one object, the world's sizes and places) with a random feature."""
    scene = world.sample_scene(seed)
    if scene["cls"] == "face":
        scene["mark"] = "eyepatch" if rng.random() < 0.5 else "none"
    else:
        scene["pattern"] = str(rng.choice(world.PATTERNS))
        if rng.random() < 0.5:  # the subjects' own second colours half the time, any colour otherwise
            scene["pattern_colour"] = _random_rgb(rng)
            scene["pattern_scale"] = float(rng.uniform(0.6, 1.5))
    return scene


def broad_sample(seed: int, size: int = world.IMAGE_SIZE) -> tuple[Image.Image, dict]:
    """One picture of the autoencoder's training distribution, fixed by ``seed``, and what it shows.

    Returns:
        the image, and ``{"background": kind, "objects": [scene dicts, back to front]}``.
    """
    rng = np.random.default_rng([seed, 52361])
    if rng.random() < WORLD_SHARE:
        scene = _world_scene(rng, seed)
        shows = {"background": scene["background"], "objects": [scene]}
        img = world.paint(world.background(scene["background"], rng, size), scene, rng)
    else:
        shows = {"background": str(rng.choice(BROAD_BACKGROUNDS)), "objects": []}
        img = broad_background(shows["background"], rng, size)
        for k in range(int(rng.choice([0, 1, 1, 1, 2, 2, 3]))):
            shows["objects"].append(_broad_object(rng, seed * 4 + k))
            img = world.paint(img, shows["objects"][-1], rng)
    return Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8)), shows


def broad_image(seed: int) -> Image.Image:
    """One 64 px picture of the autoencoder's training distribution, fixed by ``seed``."""
    return broad_sample(seed)[0]


def broad_batch(seeds: range | list[int]) -> np.ndarray:
    """uint8 images ``(n, 64, 64, 3)`` of :func:`broad_image` for the given seeds."""
    return np.stack([np.asarray(broad_image(s)) for s in seeds])


# ---- measuring ----------------------------------------------------------------------------


def load_vae(folder: str | Path):
    """A VAE from a pipeline folder (its ``vae/``) or from a VAE folder itself."""
    from diffusers import AutoencoderKL

    path = Path(folder)
    if (path / "vae" / "config.json").exists():
        path = path / "vae"
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"No VAE in {folder}; give a pipeline folder (with vae/) or a VAE folder "
            "(`python -m helpers toyworld train-autoencoder` writes one)."
        )
    return AutoencoderKL.from_pretrained(path).eval()


@torch.no_grad()
def reconstruct(vae, images: np.ndarray, batch: int = 100) -> np.ndarray:
    """Encode (posterior mean) and decode uint8 images ``(n, h, w, 3)``; returns uint8 images."""
    vae.eval()
    out = []
    for i in range(0, len(images), batch):
        x = to_tensor(images[i : i + batch])
        y = vae.decode(vae.encode(x).latent_dist.mean).sample
        out.append(((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def mean_abs_error(vae, images: np.ndarray) -> np.ndarray:
    """Per image, the mean absolute error of its reconstruction, on the 0-255 scale."""
    recon = reconstruct(vae, images)
    return np.abs(recon.astype(float) - images.astype(float)).mean(axis=(1, 2, 3))


def subject_photos() -> dict[str, np.ndarray]:
    """Every subject's instance images as uint8 arrays, rendered afresh (identical to the shipped PNGs)."""
    return {name: np.stack([np.asarray(im) for im in instance_images(name)]) for name in SUBJECTS}


def fresh_renders(n: int, start: int = FRESH_SEEDS) -> np.ndarray:
    """``n`` pretraining scenes the recipe never trains on (seeds ``start ..``), as uint8 images."""
    return np.stack([np.asarray(world.render(world.sample_scene(start + i))) for i in range(n)])


def autoencoder_error(folder_or_vae, renders: int = 1000, start: int = FRESH_SEEDS) -> dict:
    """Mean absolute reconstruction error (0-255) per subject and on fresh pretraining renders.

    Args:
        folder_or_vae: a pipeline folder, a VAE folder or a loaded ``AutoencoderKL``.
        renders: how many fresh renders to measure.
        start: the first render seed.

    Returns:
        ``{"subjects": {name: {"mae", "worst", "n"}}, "renders": {"mae", "worst", "n", "first_seed"}}``.
    """
    vae = load_vae(folder_or_vae) if isinstance(folder_or_vae, (str, Path)) else folder_or_vae
    report = {"subjects": {}}
    for name, photos in subject_photos().items():
        err = mean_abs_error(vae, photos)
        report["subjects"][name] = {
            "mae": round(float(err.mean()), 2),
            "worst": round(float(err.max()), 2),
            "n": len(err),
        }
    if renders:
        err = mean_abs_error(vae, fresh_renders(renders, start))
        report["renders"] = {
            "mae": round(float(err.mean()), 2),
            "worst": round(float(err.max()), 2),
            "n": renders,
            "first_seed": start,
        }
    return report


def reconstruction_figure(
    vaes, path: str | Path, scale: int = 3, photos: tuple[int, ...] | None = None
) -> Path:
    """Save a figure: the subjects' photos side by side, below them one row of reconstructions per VAE.

    Args:
        vaes: one VAE or a list of them (e.g. the old and the new autoencoder).
        path: the PNG to write.
        scale: pixels per image pixel, so that dots and checks can be seen.
        photos: which of each subject's photos to show (indices); None shows all.
    """
    vaes = vaes if isinstance(vaes, (list, tuple)) else [vaes]
    chosen = [p if photos is None else p[list(photos)] for p in subject_photos().values()]
    images = np.concatenate(chosen)
    rows = [images] + [reconstruct(vae, images) for vae in vaes]
    grid = Image.fromarray(np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0))
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    grid.save(path, optimize=True)
    return Path(path)


# ---- training -----------------------------------------------------------------------------


@dataclass
class AutoencoderConfig:
    """The autoencoder recipe; the latent contract (16x16x4 for 64 px) is the UNet's."""

    vae_channels: tuple[int, ...] = (16, 32, 64)  # three blocks: 64 px images, 16x16 latents
    latent_channels: int = 4
    seed: int = 0
    steps: int = 12000
    batch: int = 32  # crops per step
    images_per_step: int = 8  # broad images rendered afresh per step, each cut into several crops
    crop: int = 32  # the VAE is convolutional: crops are 4x cheaper than whole images
    lr: float = 1e-3
    warmup: int = 200
    kl_weight: float = 1e-6
    ema_decay: float = 0.998  # the saved VAE is the weights' moving average: usable whenever training stops
    checkpoint_minutes: float = 5.0
    init_dir: str | None = None  # start from this VAE folder's weights (e.g. whole-image fine-tuning, crop=64)
    decoder_only: bool = False  # train the decoder alone: the latents, and a UNet trained on them, stay valid
    extra: dict = field(default_factory=dict)  # free-form notes kept with the facts


def build_vae(cfg: AutoencoderConfig):
    """A randomly initialised ToyWorld VAE of the recipe's size (seeded)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(cfg.seed)
    ch = tuple(cfg.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=ch,
        down_block_types=("DownEncoderBlock2D",) * len(ch),
        up_block_types=("UpDecoderBlock2D",) * len(ch),
        latent_channels=cfg.latent_channels,
        layers_per_block=1,
        norm_num_groups=min(32, ch[0]),
        sample_size=world.IMAGE_SIZE,
    )


@torch.no_grad()
def widen_vae(small, wide):
    """Copy ``small``'s weights into the wider ``wide`` so that both compute the same function.

    Every old channel keeps its weights, and weights from a new channel into an old one are zero,
    so the encoder's latents and the decoder's pictures are unchanged; the new channels keep
    their random weights and start to matter as soon as training moves the zeros (their outgoing
    weights get gradients at once). Each group norm's old channels must stay a group of their
    own, so every block's channels per group must match; the mid-block attention's queries are
    rescaled for its wider head. Used to give a trained decoder more room without touching the
    latents a UNet was trained on.
    """
    have, want = tuple(small.config.block_out_channels), tuple(wide.config.block_out_channels)
    if len(have) != len(want) or any(w < h for h, w in zip(have, want)):
        raise LearnerError(
            f"An autoencoder with channels {have} can only grow to as many blocks, each at least as wide "
            f"(asked for {want}); give --channels with {len(have)} widths, or start from scratch without --init."
        )
    small_mods = dict(small.named_modules())
    for name, mod in wide.named_modules():
        old = small_mods.get(name)
        if isinstance(mod, torch.nn.GroupNorm):
            if mod.num_channels // mod.num_groups != old.num_channels // old.num_groups:
                raise LearnerError(
                    f"{name}: {old.num_channels} channels in {old.num_groups} groups cannot grow to "
                    f"{mod.num_channels} in {mod.num_groups}; widen by the factor that keeps channels per group."
                )
            mod.weight[: old.num_channels] = old.weight
            mod.bias[: old.num_channels] = old.bias
        elif isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            o, i = old.weight.shape[:2]
            mod.weight[:o] = 0.0
            mod.weight[:o, :i] = old.weight
            if mod.bias is not None:
                mod.bias[:o] = old.bias
            if name.endswith("to_q"):  # scores use only old channels, at the old head width's scale
                scale = (mod.weight.shape[0] / o) ** 0.5
                mod.weight[:o] *= scale
                mod.weight[o:] = 0.0
                if mod.bias is not None:
                    mod.bias[:o] *= scale
                    mod.bias[o:] = 0.0
    return wide


def _crops(images: torch.Tensor, cfg: AutoencoderConfig, gen: torch.Generator) -> torch.Tensor:
    """``cfg.batch`` random crops of side ``cfg.crop``, spread evenly over the images."""
    per = cfg.batch // len(images)
    span = images.shape[-1] - cfg.crop + 1
    corners = torch.randint(0, span, (len(images), per, 2), generator=gen).tolist()
    return torch.stack(
        [images[i, :, t : t + cfg.crop, s : s + cfg.crop] for i in range(len(images)) for t, s in corners[i]]
    )


class AutoencoderTrainer:
    """Trains the VAE on :func:`broad_image` pictures, checkpointing in ``out_dir/checkpoint``."""

    def __init__(self, out_dir: str | Path, cfg: AutoencoderConfig | None = None):
        self.out_dir = Path(out_dir)
        self.ckpt = self.out_dir / "checkpoint" / "state.pt"
        self.cfg = cfg = cfg or AutoencoderConfig()
        if cfg.batch % cfg.images_per_step:
            raise LearnerError("batch must be a multiple of images_per_step")
        self.vae = build_vae(cfg)
        if cfg.init_dir is not None:
            start = load_vae(cfg.init_dir)
            if tuple(start.config.block_out_channels) == tuple(cfg.vae_channels):
                self.vae.load_state_dict(start.state_dict())
            else:  # a wider network that starts as the trained one: same latents, more room to learn
                widen_vae(start, self.vae)
        if cfg.decoder_only:
            if cfg.init_dir is None:
                raise LearnerError("decoder_only trains the decoder of a trained autoencoder: give init_dir (--init).")
            for part in (self.vae.encoder, self.vae.quant_conv):
                part.requires_grad_(False)
        self.ema = copy.deepcopy(self.vae).eval().requires_grad_(False)
        self.params = [p for p in self.vae.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=0.0)
        self.state = {"step": 0, "seconds": 0.0, "loss": None, "subject_mae": None}

    def save_checkpoint(self) -> None:
        """Write weights, moving average, optimiser and progress atomically."""
        save_state(self.ckpt, asdict(self.cfg), state=self.state, vae=self.vae.state_dict(),
                   ema=self.ema.state_dict(), opt=self.opt.state_dict())

    def try_resume(self) -> bool:
        """Load the checkpoint if there is one; returns whether it did."""
        blob = load_state(self.ckpt, asdict(self.cfg))
        if blob is None:
            return False
        self.vae.load_state_dict(blob["vae"])
        self.ema.load_state_dict(blob["ema"])
        self.opt.load_state_dict(blob["opt"])
        self.state = blob["state"]
        log.info("Resumed the autoencoder at step %d", self.state["step"])
        return True

    def train_step(self) -> float:
        """One optimiser step on fresh crops; returns the reconstruction loss."""
        cfg, step = self.cfg, self.state["step"]
        first = step * cfg.images_per_step  # image seeds never repeat, so there is no epoch to overfit
        images = to_tensor(
            broad_batch(range(cfg.seed * 10**9 + first, cfg.seed * 10**9 + first + cfg.images_per_step))
        )
        x = _crops(images, cfg, torch.Generator().manual_seed(cfg.seed * 1_000_003 + step))
        self.vae.train()
        if cfg.decoder_only:  # the frozen encoder's latents, as the UNet sees them
            with torch.no_grad():
                latents, kl = self.vae.encode(x).latent_dist.mean, 0.0
        else:
            posterior = self.vae.encode(x).latent_dist
            latents = posterior.sample(generator=torch.Generator().manual_seed(step))
            kl = posterior.kl().mean()
        recon = self.vae.decode(latents).sample
        rec = F.l1_loss(recon, x) + F.mse_loss(
            recon, x
        )  # L1 is the measure itself; MSE pulls hard on big misses
        loss = rec + cfg.kl_weight * kl
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.vae.parameters()):
                e.lerp_(p, 1 - decay)
        self.state["step"] += 1
        return rec.item()

    def export(self) -> Path:
        """Save the moving-average VAE to ``out_dir`` (a diffusers VAE folder) with ``autoencoder.json``."""
        self.ema.save_pretrained(self.out_dir, safe_serialization=True)
        facts = {
            "kind": "ToyWorld autoencoder trained on the broad procedural distribution",
            "command": f"python -m helpers toyworld train-autoencoder {self.out_dir}",
            "steps_done": self.state["step"],
            "train_seconds": round(self.state["seconds"], 1),
            "last_loss": self.state["loss"],
            "subject_mae_at_last_checkpoint": self.state["subject_mae"],
            "config": asdict(self.cfg),
        }
        (self.out_dir / "autoencoder.json").write_text(json.dumps(facts, indent=2) + "\n")
        return self.out_dir

    def _checkpoint(self) -> None:
        """Save, export, and note the moving average's error on the subjects' photos."""
        photos = np.concatenate(list(subject_photos().values()))
        self.state["subject_mae"] = round(float(mean_abs_error(self.ema, photos).mean()), 2)
        self.save_checkpoint()
        self.export()

    def run(self, minutes: float | None = None, stop_at: int | None = None) -> bool:
        """Train (or resume) until ``cfg.steps``; returns True when finished.

        Args:
            minutes: pause after this many minutes (checkpoint and a usable VAE are saved).
            stop_at: pause at this step instead (a resumed run continues exactly).
        """
        from tqdm.auto import tqdm

        deadline = time.time() + 60 * minutes if minutes else float("inf")
        end = min(self.cfg.steps, stop_at if stop_at is not None else self.cfg.steps)
        self.try_resume()
        last = time.monotonic()
        bar = tqdm(total=self.cfg.steps, initial=self.state["step"], desc="autoencoder", mininterval=20)
        while self.state["step"] < end and time.time() < deadline:
            t0 = time.time()
            rec = self.train_step()
            self.state["seconds"] += time.time() - t0
            prev = self.state["loss"] if self.state["loss"] is not None else rec
            self.state["loss"] = 0.98 * prev + 0.02 * rec  # smoothed, for the bar and the facts
            bar.update(1)
            bar.set_postfix(
                loss=f"{self.state['loss']:.4f}", subject_mae=self.state["subject_mae"], refresh=False
            )
            if time.monotonic() - last > 60 * self.cfg.checkpoint_minutes:
                self._checkpoint()
                last = time.monotonic()
        bar.close()
        self._checkpoint()
        done = self.state["step"] >= self.cfg.steps
        log.info("Autoencoder %s at step %d", "finished" if done else "paused", self.state["step"])
        return done


def train_autoencoder(
    out_dir: str | Path, minutes: float | None = None, cfg: AutoencoderConfig | None = None
) -> bool:
    """Train (or resume) the broad ToyWorld autoencoder into ``out_dir``; True when finished.

    Args:
        out_dir: the VAE folder to write; its ``checkpoint/`` lets a stopped run resume.
        minutes: stop after this many minutes (a usable VAE is saved); run again to resume.
        cfg: the recipe; None uses :class:`AutoencoderConfig`'s defaults.
    """
    return AutoencoderTrainer(out_dir, cfg).run(minutes)
