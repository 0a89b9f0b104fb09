"""Pretrain the miniature ToyWorld Stable Diffusion from scratch on a CPU.

The recipe follows Stable Diffusion's at toy scale: (1) a VAE phase (reconstruction plus a
small KL term), or a VAE trained beforehand on broader pictures (``vae_dir``, made by
:mod:`helpers.toyworld.autoencoder`); (2) every training image encoded once and cached, with the VAE's scaling
factor set to 1/std of the latents; (3) UNet and text encoder trained jointly with the
epsilon-prediction MSE on SD's DDPM schedule, dropping 10 % of captions so that
classifier-free guidance works; (4) a short polish: the averaged weights trained on with a
fresh optimiser, the LR falling to zero and offset noise (a random constant per image and
channel added to the noise), which stops the model from taking an image's mean colour from
the starting noise. An exponential moving average of the weights is what is saved, with
DPM-Solver++ as its sampler (:func:`sampler_for`). The run checkpoints every few minutes and
resumes from its checkpoint by itself.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from helpers.errors import LearnerError
from helpers.toyworld import world
from helpers.toyworld.autoencoder import load_vae
from helpers.toyworld.checkpoint import load_state, save_state
from helpers.toyworld.metrics import training_scene_count
from helpers.train.batches import tokenize
from helpers.train.data import to_tensor
from helpers.train.models import TinySpec, build_tiny_components, load_components, save_pipeline
from helpers.train.sampling import make_scheduler

log = logging.getLogger(__name__)

TOY_SPEC = TinySpec(
    unet_channels=(32, 64, 128),
    vae_channels=(32, 64, 128),  # three blocks: 64 px images, 16x16 latents (the shipped autoencoder's widths)
    layers_per_block=1,
    text_hidden=64,
    text_layers=3,
    text_heads=4,
    attention_head_dim=8,
    latent_channels=4,
    sample_size=64,
)


@dataclass
class PretrainConfig:
    """Every knob of the recipe; the defaults are the shipped model's."""

    spec: TinySpec = field(default_factory=lambda: TOY_SPEC)
    seed: int = 0
    n_images: int = 16000  # training scenes: seeds 0 .. n_images-1 of world.sample_scene
    vae_dir: str | None = None  # a VAE folder (train-autoencoder) to use instead of phase 1; None: train one here
    init_dir: str | None = None  # a model made by this recipe to go on training (its VAE, UNet and text encoder)
    vae_steps: int = 500
    vae_batch: int = 32
    vae_crop: int = 32  # the VAE is convolutional: training on crops is 4x cheaper than on full images
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    unet_steps: int = 8000
    batch: int = 32
    lr: float = 8e-4
    min_snr_gamma: float = 5.0  # Min-SNR loss weighting: faster convergence on a small budget
    warmup: int = 200
    caption_dropout: float = 0.1
    open_caption_share: float = 0.3  # scenes whose caption leaves out colour and/or place (world.training_caption)
    center_latents: bool = False  # fold the latents' per-channel mean into the VAE (tried: no gain)
    polish_steps: int = 1500  # phase 4: from the EMA weights, offset noise, LR falling linearly to 0
    polish_noise_offset: float = 0.3  # std of a per-image, per-channel constant added to the noise in phase 4
    ema_decay: float = 0.999
    checkpoint_minutes: float = 5.0


SAMPLER = "dpm++"  # the model's own sampler (see sampler_for)
UNET_PHASES = ("unet", "polish")  # the phases that train the UNet and text encoder, on cached latents


def sampler_for(scheduler):
    """The scheduler the shipped model samples with: DPM-Solver++ on SD's noise schedule.

    Stable Diffusion 1.x ships PNDM. On this miniature model PNDM at the usual guidance of 7.5
    gets colours wrong: on 128 held-out captions the evaluator reads 0.63 of the colours right,
    against 0.98 with DPM-Solver++ (25 steps each). Any scheduler can still be chosen by name
    (``helpers.train.sampling``); notebook 03 compares them.
    """
    return make_scheduler(SAMPLER, scheduler.config)


def center_vae(vae, mean: torch.Tensor) -> torch.Tensor:
    """Shift the VAE's latent space by ``-mean`` (per channel) without changing what it decodes.

    The encoder's last 1x1 convolution gives ``mean`` less; the decoder's first adds it back.
    Returns ``mean`` as a ``(C, 1, 1)`` tensor to subtract from latents already encoded.
    """
    c = mean.numel()
    with torch.no_grad():
        vae.quant_conv.bias[:c] -= mean
        weight = vae.post_quant_conv.weight[:, :, 0, 0]
        vae.post_quant_conv.bias += weight @ mean
    return mean.view(c, 1, 1)


def record_latent_mean(vae, latents: torch.Tensor) -> None:
    """Write the per-channel mean of the training latents into the VAE's config (``latents_mean``).

    Sampling reads it to start from noise with the data's mean (``helpers.train.sampling.initial_latents``).
    """
    vae.register_to_config(latents_mean=[round(float(v), 6) for v in latents.float().mean(dim=(0, 2, 3))])


def _seed_all(seed: int) -> None:
    """Seed torch and numpy."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def render_dataset(n: int, open_share: float = 0.0) -> tuple[np.ndarray, list[str]]:
    """Render training scenes 0..n-1; returns uint8 images ``(n, 64, 64, 3)`` and their captions.

    ``open_share``: the share of captions that leave details open (``world.training_caption``).
    """
    images = np.empty((n, world.IMAGE_SIZE, world.IMAGE_SIZE, 3), np.uint8)
    captions = []
    for i in range(n):
        image, text, _ = world.sample_pair(i, open_share)
        images[i] = np.asarray(image)
        captions.append(text)
    return images, captions


def _batch_index(n: int, size: int, seed: int, step: int) -> torch.Tensor:
    """A random batch of indices that depends only on (seed, step), so resuming is exact."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(0, n, (size,), generator=gen)


def encode_images(vae, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    """The posterior means of uint8 images, encoded in batches (the VAE is put in eval mode)."""
    vae.eval()
    with torch.no_grad():
        return torch.cat(
            [vae.encode(to_tensor(images[i : i + batch])).latent_dist.mean for i in range(0, len(images), batch)]
        )


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter."""
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warmup, then constant (stopping early leaves a usable model); in the polish phase, down to 0."""
    if step >= cfg.unet_steps:
        return cfg.lr * (cfg.unet_steps + cfg.polish_steps - step) / cfg.polish_steps
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup)


class Pretrainer:
    """Runs the recipe phase by phase, saving a checkpoint in ``out_dir/checkpoint``."""

    def __init__(self, out_dir: str | Path, cfg: PretrainConfig | None = None):
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoint"
        self.cfg = cfg = cfg or PretrainConfig()
        _seed_all(cfg.seed)
        self.parts = build_tiny_components(cfg.spec, cfg.seed)
        self.state = {"phase": "vae", "step": 0, "seconds": 0.0, "losses": {}}
        self.ema: dict[str, torch.nn.Module] = {}
        self.opt: torch.optim.Optimizer | None = None
        self._last_save = time.monotonic()

    def warm_start(self, model_dir: str | Path) -> None:
        """Start at the polish phase from a model saved after the main UNet phase (its EMA weights).

        For experiments on the end of the recipe without repeating its first hour: the result is
        what the whole recipe gives when ``model_dir`` is its model after ``cfg.unet_steps`` steps.
        """
        self._load_model(model_dir)
        self.state.update(phase="unet", step=self.cfg.unet_steps)

    def _load_model(self, model_dir: str | Path) -> None:
        """Take a saved model's VAE (with its scaling factor), UNet and text encoder weights."""
        loaded = load_components(str(model_dir))
        for k in ("vae", "unet", "text_encoder"):
            self.parts[k].load_state_dict(loaded[k].state_dict())
        self.parts["vae"].register_to_config(scaling_factor=loaded["vae"].config.scaling_factor)

    def continue_from(self, model_dir: str | Path) -> None:
        """Phase 1 for more training of a finished model: all its weights, then phases 2-4 anew.

        The latents are encoded again with the model's own VAE and keep its scaling factor, so
        the UNet goes on seeing what it was trained on. The model's facts are kept in the new one's.
        """
        model_dir = Path(model_dir)
        facts_file = model_dir / "kit_model.json"
        if not facts_file.exists():
            raise LearnerError(f"{model_dir} has no kit_model.json: --init takes a model made by `toyworld pretrain`.")
        facts = json.loads(facts_file.read_text())
        try:
            self._load_model(model_dir)
        except RuntimeError as err:  # load_state_dict: other widths or blocks
            raise LearnerError(
                f"{model_dir} has another shape than the recipe's spec ({err.__class__.__name__} while loading); "
                "--init takes a model of the recipe's own spec."
            ) from None
        earlier = {k: v for k, v in facts.items() if k not in ("continued_from", "autoencoder", "vae_note")}
        self.state.setdefault("extra_facts", {})["continued_from"] = [*facts.get("continued_from", []), earlier]
        for key in ("autoencoder", "vae_note"):
            if key in facts:
                self.state["extra_facts"][key] = facts[key]
        self.state.update(phase="encode", step=0)

    # ---- checkpoints ----------------------------------------------------------------------

    def _ckpt_file(self) -> Path:
        return self.ckpt_dir / "state.pt"

    def save_checkpoint(self) -> None:
        """Write models, EMA, optimiser and progress atomically."""
        save_state(
            self._ckpt_file(), asdict(self.cfg),
            state=self.state,
            models={k: self.parts[k].state_dict() for k in ("vae", "unet", "text_encoder")},
            ema={k: m.state_dict() for k, m in self.ema.items()},
            opt=self.opt.state_dict() if self.opt is not None else None,
            scaling_factor=self.parts["vae"].config.scaling_factor,
        )
        self._last_save = time.monotonic()

    def try_resume(self) -> bool:
        """Load the checkpoint if there is one; returns whether it did."""
        blob = load_state(self._ckpt_file(), asdict(self.cfg))
        if blob is None:
            return False
        for k, sd in blob["models"].items():
            self.parts[k].load_state_dict(sd)
        self.parts["vae"].register_to_config(scaling_factor=blob["scaling_factor"])
        self.state = blob["state"]
        self._resume_blob = blob  # optimiser and EMA are restored when their phase starts
        log.info("Resumed at phase %s, step %d", self.state["phase"], self.state["step"])
        return True

    def _due(self) -> bool:
        return time.monotonic() - self._last_save > 60 * self.cfg.checkpoint_minutes

    # ---- phases ---------------------------------------------------------------------------

    def load_vae(self, folder: str | Path) -> None:
        """Phase 1 from a VAE trained beforehand: its weights replace the recipe's own VAE."""
        trained = load_vae(folder)
        if tuple(trained.config.block_out_channels) != tuple(self.cfg.spec.vae_channels):
            raise LearnerError(
                f"The VAE in {folder} has channels {tuple(trained.config.block_out_channels)}, the recipe's spec "
                f"{tuple(self.cfg.spec.vae_channels)}; train it with the same channels or change spec.vae_channels."
            )
        self.parts["vae"].load_state_dict(trained.state_dict())
        facts = Path(folder) / "autoencoder.json"  # how the VAE was trained, kept with the model's facts
        if facts.exists():
            self.state.setdefault("extra_facts", {})["autoencoder"] = json.loads(facts.read_text())
        self.state.update(phase="encode", step=0)

    def train_vae(self, images: np.ndarray, deadline: float) -> bool:
        """Phase 1: VAE reconstruction + KL; returns False if the deadline stopped it."""
        from tqdm.auto import tqdm

        cfg, vae = self.cfg, self.parts["vae"]
        vae.train()
        self.opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
        blob = getattr(self, "_resume_blob", None)
        if blob is not None and blob["opt"] is not None and self.state["phase"] == "vae":
            self.opt.load_state_dict(blob["opt"])
            blob["opt"] = None  # used: the next phase starts a fresh optimiser
        bar = tqdm(total=cfg.vae_steps, initial=self.state["step"], desc="VAE", mininterval=20)
        while self.state["step"] < cfg.vae_steps:
            if time.time() > deadline:
                return False
            step, t0 = self.state["step"], time.time()
            x = to_tensor(images[_batch_index(len(images), cfg.vae_batch, cfg.seed, step).numpy()])
            top, left = (
                int(v) for v in _batch_index(world.IMAGE_SIZE - cfg.vae_crop + 1, 2, cfg.seed + 2, step)
            )
            x = x[:, :, top : top + cfg.vae_crop, left : left + cfg.vae_crop]
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample()).sample
            rec = F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x)
            loss = rec + cfg.kl_weight * posterior.kl().mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            self.opt.step()
            self.state["step"] += 1
            self.state["seconds"] += time.time() - t0
            self.state["losses"]["vae_recon"] = rec.item()
            bar.update(1)
            bar.set_postfix(rec=f"{float(rec):.4f}")
            if self._due():
                self.save_checkpoint()
        bar.close()
        self.state.update(phase="encode", step=0)
        self.opt = None
        self.save_checkpoint()
        return True

    def encode(self, images: np.ndarray) -> torch.Tensor:
        """Phase 2: encode all images once (posterior mean) and set the VAE scaling factor."""
        vae = self.parts["vae"]
        latents = encode_images(vae, images)
        if self.cfg.center_latents:
            latents = latents - center_vae(vae, latents.mean(dim=(0, 2, 3)))
        if self.cfg.init_dir is None:  # a continued model keeps the scale its UNet was trained with
            scale = float(1.0 / latents.std())
            vae.register_to_config(scaling_factor=scale)  # the UNet sees unit-variance latents, as in SD
        return latents

    def _init_ema(self) -> None:
        """EMA copies of the UNet and text encoder, restored from the checkpoint if it has them."""
        blob = getattr(self, "_resume_blob", None)
        for k in ("unet", "text_encoder"):
            self.ema[k] = copy.deepcopy(self.parts[k]).eval().requires_grad_(False)
            if blob is not None and k in blob["ema"]:
                self.ema[k].load_state_dict(blob["ema"][k])

    def _start_unet_phase(self) -> list[torch.nn.Parameter]:
        """UNet and text encoder in training mode, their optimiser (restored on resume) and EMA; returns the parameters."""
        unet, te = self.parts["unet"], self.parts["text_encoder"]
        unet.train()
        te.train()
        params = list(unet.parameters()) + list(te.parameters())
        self.opt = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=1e-2)
        blob = getattr(self, "_resume_blob", None)
        if blob is not None and blob["opt"] is not None and self.state["phase"] in UNET_PHASES:
            self.opt.load_state_dict(blob["opt"])
            blob["opt"] = None
        self._init_ema()
        return params

    def _start_polish(self, params: list[torch.nn.Parameter]) -> None:
        """Phase 4: go on from the averaged weights with a fresh optimiser (the LR then falls to zero)."""
        for k in ("unet", "text_encoder"):
            self.parts[k].load_state_dict(self.ema[k].state_dict())
        self.opt = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=1e-2)
        self.state["phase"] = "polish"

    def _denoising_loss(
        self, latents: torch.Tensor, ids: torch.Tensor, step: int, sched, weight: torch.Tensor, empty: torch.Tensor
    ) -> torch.Tensor:
        """The Min-SNR-weighted epsilon-prediction loss on the batch of ``step`` (captions dropped at random)."""
        cfg = self.cfg
        idx = _batch_index(len(latents), cfg.batch, cfg.seed + 1, step)
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + step)
        x0 = latents[idx].float() * self.parts["vae"].config.scaling_factor
        noise = torch.randn(x0.shape, generator=gen)
        if self.state["phase"] == "polish":  # so that the model stops reading an image's mean off the noise
            noise += cfg.polish_noise_offset * torch.randn(x0.shape[:2] + (1, 1), generator=gen)
        t = torch.randint(0, 1000, (len(idx),), generator=gen)
        tok = ids[idx].clone()
        tok[torch.rand(len(idx), generator=gen) < cfg.caption_dropout] = empty  # unconditional examples
        pred = self.parts["unet"](sched.add_noise(x0, noise, t), t, self.parts["text_encoder"](tok)[0]).sample
        per_sample = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
        return (per_sample * weight[t]).mean()

    def _unet_update(self, loss: torch.Tensor, params: list[torch.nn.Parameter], step: int) -> None:
        """One optimiser step at the step's LR (gradients clipped to norm 1), then the EMA update."""
        for group in self.opt.param_groups:
            group["lr"] = _lr_at(step, self.cfg)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        self.opt.step()
        decay = min(self.cfg.ema_decay, (1 + step) / (10 + step))  # short memory at the start
        _ema_update(self.ema["unet"], self.parts["unet"], decay)
        _ema_update(self.ema["text_encoder"], self.parts["text_encoder"], decay)

    def _record_unet_step(self, loss: torch.Tensor, seconds: float) -> None:
        """Count the step, its time and a smoothed loss (for the log and the facts file)."""
        self.state["step"] += 1
        self.state["seconds"] += seconds
        prev = self.state["losses"].get("unet_mse", float(loss))
        self.state["losses"]["unet_mse"] = 0.98 * prev + 0.02 * float(loss)

    def train_unet(self, latents: torch.Tensor, ids: torch.Tensor, deadline: float) -> bool:
        """Phase 3: joint UNet + text encoder denoising training; returns False if stopped by the deadline."""
        from diffusers import DDPMScheduler
        from tqdm.auto import tqdm

        cfg = self.cfg
        sched = DDPMScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
        )
        params = self._start_unet_phase()
        empty = tokenize(self.parts["tokenizer"], [""])[0]
        snr = sched.alphas_cumprod / (1 - sched.alphas_cumprod)
        weight = snr.clamp(max=cfg.min_snr_gamma) / snr  # Min-SNR-gamma for epsilon prediction
        total = cfg.unet_steps + cfg.polish_steps
        bar = tqdm(total=total, initial=self.state["step"], desc="UNet", mininterval=20)
        while self.state["step"] < total:
            if time.time() > deadline:
                return False
            if self.state["step"] >= cfg.unet_steps and self.state["phase"] == "unet":
                self._start_polish(params)
            step, t0 = self.state["step"], time.time()
            loss = self._denoising_loss(latents, ids, step, sched, weight, empty)
            self._unet_update(loss, params, step)
            self._record_unet_step(loss, time.time() - t0)
            bar.update(1)
            bar.set_postfix(mse=f"{self.state['losses']['unet_mse']:.4f}")
            if self._due():
                self.save_checkpoint()
                self.export()
        bar.close()
        self.state.update(phase="done")
        self.save_checkpoint()
        return True

    # ---- output ---------------------------------------------------------------------------

    def command(self) -> str:
        """The command line that runs this recipe (the options that differ from the shipped defaults)."""
        cfg, parts = self.cfg, [f"python -m helpers toyworld pretrain {self.out_dir}"]
        if cfg.vae_dir is not None:
            parts.append(f"--vae {cfg.vae_dir}")
        if cfg.init_dir is not None:
            parts.append(f"--init {cfg.init_dir} --unet-steps {cfg.unet_steps}")
        if cfg.open_caption_share != PretrainConfig.open_caption_share:
            parts.append(f"--open-captions {cfg.open_caption_share}")
        return " ".join(parts)

    def export(self) -> Path:
        """Save the EMA weights as a diffusers pipeline folder in ``out_dir``."""
        parts = dict(self.parts)
        for k, m in self.ema.items():
            parts[k] = m
        parts["scheduler"] = sampler_for(parts["scheduler"])
        facts = {
            "kind": "ToyWorld miniature Stable Diffusion, pretrained from scratch by the kit",
            "licence": "Apache-2.0",
            "command": self.command(),
            "phase": self.state["phase"],
            "unet_steps_done": self.state["step"] if self.state["phase"] in (*UNET_PHASES, "done") else 0,
            "train_seconds": round(self.state["seconds"], 1),
            "losses": self.state["losses"],
            "scaling_factor": self.parts["vae"].config.scaling_factor,
            "config": asdict(self.cfg),
            "image_size": world.IMAGE_SIZE,
            "training_scenes": f"world.sample_scene(seed) for seed in range({self.cfg.n_images})",
        }
        facts.update(self.state.get("extra_facts", {}))
        save_pipeline(parts, self.out_dir, extra=facts)
        return self.out_dir

    def run(self, minutes: float | None = None, keep_checkpoint: bool = False) -> bool:
        """Run (or resume) the whole recipe; returns True once the model is complete."""
        start = time.time()
        deadline = start + 60 * minutes if minutes else float("inf")
        self.try_resume()
        cache = self.ckpt_dir / "latents.pt"
        if self.state["phase"] in (*UNET_PHASES, "done") and cache.exists():
            latents, ids = torch.load(cache).values()  # encoded once, cached for resuming
            latents = latents.float()
        else:
            log.info("Rendering %d training scenes", self.cfg.n_images)
            images, captions = render_dataset(self.cfg.n_images, self.cfg.open_caption_share)
            if self.state["phase"] == "vae" and self.cfg.vae_dir is not None:
                self.load_vae(self.cfg.vae_dir)
            if self.state["phase"] == "vae" and self.cfg.init_dir is not None:
                self.continue_from(self.cfg.init_dir)
            if self.state["phase"] == "vae" and not self.train_vae(images, deadline):
                self.save_checkpoint()
                return False
            if self.state["phase"] == "encode":
                self.state.update(phase="unet", step=0)
            log.info("Encoding %d images", len(images))
            latents = self.encode(images)
            del images
            ids = tokenize(self.parts["tokenizer"], captions)
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"latents": latents.half(), "ids": ids.int()}, cache)
            self.save_checkpoint()
        ids = ids.long()
        record_latent_mean(self.parts["vae"], latents)
        if self.state["phase"] == "done":
            self._init_ema()  # finished earlier: only export again
        done = self.state["phase"] == "done" or self.train_unet(latents, ids, deadline)
        self.save_checkpoint()
        self.export()
        if done and not keep_checkpoint:
            shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        log.info(
            "Pretraining %s after %.1f min", "finished" if done else "paused", (time.time() - start) / 60
        )
        return done


def pretrain(
    out_dir: str | Path,
    minutes: float | None = None,
    cfg: PretrainConfig | None = None,
    keep_checkpoint: bool = False,
) -> bool:
    """Pretrain (or resume) the ToyWorld model into ``out_dir``; True when finished.

    Args:
        out_dir: the pipeline folder to write (``data/toyworld/model`` for the shipped one).
        minutes: stop after this many minutes (saving a checkpoint and a usable model); run again to resume.
        cfg: the recipe; None uses the shipped model's.
        keep_checkpoint: keep ``out_dir/checkpoint`` after finishing.
    """
    return Pretrainer(out_dir, cfg or PretrainConfig()).run(minutes, keep_checkpoint)


def add_latent_mean(model_dir: str | Path, n_images: int | None = None) -> list[float]:
    """Record ``latents_mean`` in a saved model's VAE, from its training scenes (for models made before the recipe did).

    The scenes are the recipe's (seeds ``0 .. n_images-1``, default: the model's ``n_images``),
    encoded as the recipe encodes them; the VAE folder is saved again with the mean in its config.
    """
    from diffusers import AutoencoderKL

    vae_dir = Path(model_dir) / "vae"
    vae = AutoencoderKL.from_pretrained(vae_dir)
    n_images = n_images or training_scene_count(model_dir) or PretrainConfig.n_images
    record_latent_mean(vae, encode_images(vae, render_dataset(n_images)[0]))
    vae.save_pretrained(vae_dir)
    return list(vae.config.latents_mean)


def write_facts(out_dir: str | Path, **facts) -> None:
    """Add measured facts (e.g. held-out accuracy) to the model's ``kit_model.json``."""
    path = Path(out_dir) / "kit_model.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(facts)
    path.write_text(json.dumps(data, indent=2) + "\n")
