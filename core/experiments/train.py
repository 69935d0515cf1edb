"""``ntscc-xr train``: staged, resumable training of compatible NTSCC+ (paper Sec. VI-B).

Stages (by global step):

1. ``ntc``   — transforms + entropy model, the channel replaced by the uniform-noise proxy,
               λ = λ0, η = 0.2;
2. ``jscc``  — add the contextual JSCC over AWGN at 10 dB, λ = λ0, η = 0.2;
3. ``compat``— compatible fine-tuning: λ and η drawn log-uniformly over [min Λ, max Λ] and
               ``--eta-range`` (rate-balanced: log CBR ≈ log η + log bits(λ), so every octave
               of the CBR range gets about the same share of the samples; ``--lambda-draw grid``
               draws λ from the knots only), SNR ~ U[0, 14] dB.

Loss (eq. 7): R + λ·D, with R the channel uses per pixel η·Σ_i -log2 p(y_i) / (H·W) (plus the
hyperprior's η·bits_z/(H·W), which regularises z although z itself is not transmitted) and D
the MSE on the 0-255 scale times ``--dist-scale``. The paper does not state its normalisation;
the default 1/25 is calibrated so that Λ = {0.013 … 0.72} at η = 0.2 spans CBR ≈ 0.01–0.1,
the range of the paper's Fig. 4(a) (with 1.0 every λ in Λ saturated the rate levels).

In the JSCC stages D also holds, weighted by ``--ntc-weight``, the transform-coding proxy
distortion d(x, g_s(y + U)) (as NTSCC training keeps it): the rate quantiser Q is not
differentiable, so without this term nothing rewards entropy (symbols) and the rate term
alone drives the symbol count down (the shipped model's crop CBR fell 0.10 -> 0.015 over
20 000 steps while its PSNR stayed flat).

The rate- and SNR-response scalars (log r_global,λ, log r_a/na, log c_global,ν, ν embeddings) and
the JSCC branches' zero-initialised linear layers (bypass; ``prior_in``/``prior_out`` of the
``jscc_prior`` experiment) learn at ``--response-lr-mult`` times the
learning rate: Adam moves a parameter by about lr per step, so at lr 1e-4 a log-scale factor would
need 10 000 steps to move by e (x2.7).

Training state (model, EMA of the weights, optimiser, step) is checkpointed to ``--out`` every
``--ckpt-every`` steps; rerunning the same command resumes. The exported float16 weights are
the EMA's (``--ema``). ``--init-from`` starts a new run from shipped weights.
"""
from __future__ import annotations

import argparse
import copy
import csv
import logging
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from core.codec.checkpoint import export_weights, load_model, load_state, read_metadata
from core.codec.config import ModelConfig, get_config
from core.codec.fast import native_bf16
from core.codec.jscc import is_added_layer
from core.codec.model import NTSCCPlus
from core.codec.widen import adapt_rate_levels
from core.paths import REPO_ROOT

logger = logging.getLogger(__name__)

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "train"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="small", help="model configuration: small (CPU), paper (GPU), tiny (tests)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder of training images (never Kodak)")
    p.add_argument("--out", default="runs/train_small", help="run folder: checkpoints, log CSV, curves")
    p.add_argument("--stage-steps", default="3000,2000,20000",
                   help="steps of stages ntc,jscc,compat (cumulative schedule)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128, help="random crop size (multiple of 64)")
    p.add_argument("--flat-fraction", type=float, default=0.0,
                   help="share of crops replaced by a synthetic plain one (a colour or a gentle ramp) so "
                        "that plain content costs few symbols (default 0; the background run uses 0.05)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--lr-final", type=float, default=3e-5, help="learning rate over the last 10%% of steps")
    p.add_argument("--ckpt-every", type=int, default=200)
    p.add_argument("--export", default=None,
                   help="where to export the float16 safetensors weights at each checkpoint (default: "
                        "OUT/candidate.safetensors; tools/promote_candidate.py replaces the shipped "
                        "weights only when the candidate's Kodak front is better)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--amp", choices=["bf16", "fp16", "off"], default="bf16",
                   help="mixed precision: bf16 autocast (no loss scaling) where the device computes bf16 "
                        "natively (CUDA; CPUs with AVX-512 BF16 or AMX: 1.5x the steps per hour on the AMD "
                        "EPYC), float32 elsewhere; fp16 on CUDA only; off = float32. The entropy model "
                        "always runs in float32")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--max-minutes", type=float, default=0, help="stop cleanly after this long (0 = no limit)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--eta-range", default=None,
                   help="η drawn log-uniformly in this range during compatible fine-tuning, e.g. 0.05,0.7 "
                        "(default: the range the resumed / initial model was trained on, 0.05,0.4 for a new "
                        "one; paper: 0.15,0.3). Recorded in the model's config: evaluation grids and the "
                        "live transmitter stay inside it")
    p.add_argument("--lambda-draw", choices=["log-uniform", "grid"], default="log-uniform",
                   help="compatible stage: λ log-uniform over [min Λ, max Λ] (rate-balanced) or the knots of Λ")
    p.add_argument("--dist-scale", type=float, default=1 / 25,
                   help="D = dist_scale · MSE(0-255); calibrates Λ to the CBR range 0.01-0.1")
    p.add_argument("--ntc-weight", type=float, default=1.0,
                   help="weight of the transform-coding proxy distortion d(x, g_s(y+U)) in the JSCC stages (0 = off)")
    p.add_argument("--response-lr-mult", type=float, default=30.0,
                   help="learning-rate multiplier of the rate/SNR response scalars")
    p.add_argument("--rate-lr-mult", type=float, default=None,
                   help="learning-rate multiplier of r_global,λ alone (default: --response-lr-mult); "
                        "1 keeps a --rate-slope spread while the transforms learn the finer steps")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported weights (0 = no EMA)")
    p.add_argument("--warmup", type=int, default=300,
                   help="linear learning-rate warm-up steps at the start of a run (not on resume)")
    p.add_argument("--init-from", default=None,
                   help="start a new run (no checkpoint in --out yet) from these weights, e.g. the shipped "
                        "weights/ntscc_plus_small.safetensors")
    p.add_argument("--rate-slope", type=float, default=None,
                   help="with --init-from: re-initialise the rate response r_global,λ ∝ λ^-slope around "
                        "the middle of Λ (0.5 = the high-rate optimum; see RateResponse.spread)")


class CropSampler:
    """Random crops (with flips) from photos held in memory as uint8.

    ``folder`` is a folder of photos (decoded with Pillow) or a ``.npz`` pack made by
    ``tools/pack_train_data.py`` (numpy only: for a GPU machine without Pillow).
    """

    def __init__(self, folder: str, crop: int, seed: int, flat_fraction: float = 0.0):
        if "kodak" in str(folder).lower():
            raise ValueError("refusing to train on Kodak: it is the test set")
        self.crop, self.rng = crop, np.random.default_rng(seed)
        self.flat_fraction = float(flat_fraction)
        if str(folder).endswith(".npz"):
            with np.load(folder) as pack:
                rgbs = [pack[k] for k in sorted(pack.files)]
            self.images = [torch.from_numpy(np.array(r, copy=True)).permute(2, 0, 1)
                           for r in rgbs if min(r.shape[:2]) >= crop]
        else:
            self.images = self._read_folder(folder, crop)
        if not self.images:
            raise ValueError(f"no training image in {folder} is at least {crop}px on its short side")

    @staticmethod
    def _read_folder(folder: str, crop: int) -> list[torch.Tensor]:
        from core.media.imageio import list_images, read_rgb
        images = []
        for f in list_images(folder):
            rgb = read_rgb(f)
            # Halve large photos: fewer JPEG artefacts, more content per crop.
            if min(rgb.shape[:2]) >= 4 * crop:
                from PIL import Image
                im = Image.fromarray(rgb)
                rgb = np.asarray(im.resize((im.width // 2, im.height // 2), Image.BICUBIC))
            if min(rgb.shape[:2]) >= crop:
                images.append(torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1))
        return images

    def flat_crop(self) -> torch.Tensor:
        """A synthetic plain crop: one colour, or a gentle linear ramp between two colours.

        Why: photos never hold a perfectly plain 128² patch, so a model trained on them alone
        spent more symbols on a uniform grey frame than on kodim20 (entropy model out of its
        distribution: tests/test_shipped_model.py::test_rate_map_follows_content). Plain sky,
        walls and letterbox bars are common in 360° content."""
        a = torch.from_numpy(self.rng.uniform(0, 255, 3)).float().view(3, 1, 1)
        if self.rng.random() < 0.5:
            return a.expand(3, self.crop, self.crop).round().to(torch.uint8)
        b = a + torch.from_numpy(self.rng.uniform(-40, 40, 3)).float().view(3, 1, 1)
        ramp = torch.linspace(0, 1, self.crop).view(1, 1, -1).expand(1, self.crop, self.crop)
        if self.rng.random() < 0.5:
            ramp = ramp.transpose(1, 2)
        return (a + (b - a) * ramp).clamp(0, 255).round().to(torch.uint8)

    def batch(self, n: int) -> torch.Tensor:
        out = []
        for _ in range(n):
            if self.flat_fraction and self.rng.random() < self.flat_fraction:
                out.append(self.flat_crop())
                continue
            img = self.images[self.rng.integers(len(self.images))]
            _, h, w = img.shape
            top, left = self.rng.integers(h - self.crop + 1), self.rng.integers(w - self.crop + 1)
            c = img[:, top:top + self.crop, left:left + self.crop]
            if self.rng.random() < 0.5:
                c = c.flip(-1)
            out.append(c)
        return torch.stack(out).float() / 255.0


def stage_of(step: int, bounds: list[int]) -> str:
    if step < bounds[0]:
        return "ntc"
    if step < bounds[0] + bounds[1]:
        return "jscc"
    return "compat"


def training_config(args: argparse.Namespace, ckpt: dict | None) -> tuple[ModelConfig, ModelConfig]:
    """(the run's model config, the config the resumed / initial weights were trained with).

    The run's is ``--config``'s network with the η range of ``--eta-range``, or else the one the
    resumed checkpoint / ``--init-from`` model was trained on. Weights trained with another rate-
    level table are carried over (:func:`core.codec.widen.adapt_rate_levels`), as are weights
    of a network the run's only extends with zero-initialised parts (:meth:`ModelConfig.extends`);
    any other difference of network stops the run before any work."""
    cfg = get_config(args.config)
    if ckpt is not None:
        source, origin = ModelConfig.from_dict(ckpt["config"]), f"{args.out}/last.pt"
    elif args.init_from:
        if not Path(args.init_from).is_file():
            raise SystemExit(f"--init-from {args.init_from}: no such weights file; pass a .safetensors "
                             f"file (the shipped one is weights/ntscc_plus_small.safetensors) or leave it out")
        meta = read_metadata(args.init_from)["config"]
        source, origin = (ModelConfig.from_dict(meta), args.init_from) if meta else (cfg, None)
    else:
        source, origin = cfg, None
    if origin and not (source.same_architecture(cfg, ignore=("rate_levels",)) or cfg.extends(source)):
        raise SystemExit(f"{origin} has config {source.name!r}, another network than --config {cfg.name!r}; "
                         f"use a new --out or the matching --config")
    eta_range = source.eta_range
    if args.eta_range:
        lo, hi = (float(v) for v in args.eta_range.split(","))
        if not 0 < lo < hi:
            raise SystemExit(f"--eta-range {args.eta_range}: needs 0 < low < high, e.g. 0.05,0.7")
        eta_range = (lo, hi)
    return replace(cfg, eta_range=eta_range), source


def log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def sample_conditions(stage: str, cfg: ModelConfig, b: int, rng: random.Random,
                      lambda_draw: str = "log-uniform"):
    """(λ, η, SNR dB) for a batch: the training point λ0/η0/ν0 before the compatible stage.

    η is drawn in the config's trained range ``cfg.eta_range``."""
    if stage == "compat":
        lo, hi = min(cfg.lambdas), max(cfg.lambdas)
        lam = torch.tensor([rng.choice(cfg.lambdas) if lambda_draw == "grid" else log_uniform(rng, lo, hi)
                            for _ in range(b)])
        eta = torch.tensor([log_uniform(rng, *cfg.eta_range) for _ in range(b)])
        snr = torch.tensor([rng.uniform(0.0, 14.0) for _ in range(b)])
    else:
        lam = torch.full((b,), cfg.lambda0)
        eta = torch.full((b,), cfg.eta0)
        snr = torch.full((b,), cfg.snr0_db)
    return lam, eta, snr


def rd_loss(out: dict, x: torch.Tensor, lam: torch.Tensor, eta: torch.Tensor,
            dist_scale: float = 1 / 25, ntc_weight: float = 0.0):
    """Per-image R + λ·D (eq. 7); returns (loss, mse255, channel uses per pixel).

    With ``out["x_ntc"]`` present, D = MSE(x̂) + ntc_weight · MSE(g_s(y + U)).
    """
    pixels = x.shape[-1] * x.shape[-2]
    mse255 = ((out["x_hat"] - x) * 255).pow(2).mean(dim=(1, 2, 3))
    dist = mse255
    if "x_ntc" in out and ntc_weight:
        dist = dist + ntc_weight * ((out["x_ntc"] - x) * 255).pow(2).mean(dim=(1, 2, 3))
    rate = out["k"].sum(dim=(1, 2)) / pixels
    rate_z = eta * out["bits_z"] / pixels
    return (rate + rate_z + lam * dist_scale * dist).mean(), mse255, rate


def lr_at(step: int, total: int, lr: float, lr_final: float, warmup_from: int | None = None,
          warmup: int = 0) -> float:
    """Linear warm-up over ``warmup`` steps after ``warmup_from`` (a fresh optimiser), then
    ``lr``, then ``lr_final`` over the last 10 % of the schedule."""
    base = lr_final if step >= 0.9 * total else lr
    if warmup_from is not None and warmup and step < warmup_from + warmup:
        return base * (step - warmup_from + 1) / warmup
    return base


#: The response networks' scalars and ν embeddings: few parameters that must move far (a log
#: scale by ~1, an embedding from zero), so they learn at ``--response-lr-mult`` times the rate.
RESPONSE_SCALARS = ("log_r_global", "log_r_a", "log_r_na", "log_c_global", "nu_embed_a", "nu_embed_na")


def param_groups(model: torch.nn.Module, lr: float, response_lr_mult: float,
                 rate_lr_mult: float | None = None) -> list[dict]:
    """Adam groups: the response scalars and the JSCC's added layers (zero at first beside trained
    weights, they must grow to the latent's scale; :data:`core.codec.jscc.ADDED_LAYERS`) at
    ``response_lr_mult``·lr, everything else at lr; with
    ``rate_lr_mult``, the rate response's r_global,λ gets a group of its own at that multiple.

    Why r_global apart: right after :meth:`RateResponse.spread` the transforms cannot yet use
    the finer steps at the top of Λ, so a fast r_global would flatten back before they learn to
    (measured: 400 steps at 30× narrowed the spread from 2.0 to 1.45 in log r)."""
    fast, rate, rest = [], [], []
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "log_r_global" and rate_lr_mult is not None:
            rate.append(p)
        else:
            is_fast = leaf in RESPONSE_SCALARS or is_added_layer(name)
            (fast if is_fast else rest).append(p)
    groups = [{"params": rest, "lr": lr, "lr_mult": 1.0},
              {"params": fast, "lr": lr * response_lr_mult, "lr_mult": response_lr_mult}]
    if rate:
        groups.append({"params": rate, "lr": lr * rate_lr_mult, "lr_mult": rate_lr_mult})
    return groups


#: per-group settings that belong to this run, not to the checkpoint it resumes
RUN_GROUP_SETTINGS = ("lr_mult", "fused", "foreach")


def restore_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """Load a checkpoint's optimiser state (Adam moments) but keep this run's per-group settings:
    ``load_state_dict`` also restores each group's hyper-parameters, so without this a resumed run
    silently kept the learning-rate multiples it was started with (``--rate-lr-mult 0`` on resume
    did not hold r_global until this was fixed, at step 39 000) and the implementation it was
    started with (a checkpoint of an unfused Adam turned fused Adam off again).

    Raises ValueError when the checkpoint has another number of parameter groups or another
    number of parameters in a group (torch's check)."""
    saved = state["param_groups"]
    if len(saved) != len(opt.param_groups):
        raise ValueError(f"the checkpoint has {len(saved)} parameter groups, this run {len(opt.param_groups)}")
    groups = [{**old, **{k: g[k] for k in RUN_GROUP_SETTINGS if k in g}}
              for old, g in zip(saved, opt.param_groups)]
    opt.load_state_dict({**state, "param_groups": groups})


class EMA:
    """Exponential moving average of a model's floating-point state (weights and buffers)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.state[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.state[k].copy_(v)

    def resume(self, saved: dict[str, torch.Tensor]) -> None:
        """Continue from a checkpoint's average; entries it lacks (parameters added to the model
        since, which start at their initial values) keep the model's current value."""
        self.state = {k: saved[k].to(v.device) if k in saved else v for k, v in self.state.items()}

    def copy_to(self, model: torch.nn.Module) -> None:
        model.load_state_dict(self.state)


class _NoBar:
    """Stands in for tqdm where it is not installed."""

    def __init__(self, *args, **kwargs):
        pass

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def plot_curves(log_path: Path, png_path: Path) -> None:
    try:
        import matplotlib
    except ImportError:  # curves are a convenience; the CSV log is the record
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list(csv.DictReader(open(log_path)))
    if len(rows) < 2:
        return
    step = np.array([int(r["step"]) for r in rows])
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.6))
    for i, (key, label) in enumerate([("loss", "loss R + λD"), ("psnr", "PSNR (dB)"), ("cbr", "CBR k/(3HW)")]):
        v = np.array([float(r[key]) for r in rows])
        win = max(1, len(v) // 50)
        ax[i].plot(step, v, alpha=0.3)
        ax[i].plot(step[win - 1:], np.convolve(v, np.ones(win) / win, "valid"))
        ax[i].set_xlabel("step"); ax[i].set_title(label); ax[i].grid(alpha=0.3)
    fig.tight_layout(); fig.savefig(png_path, dpi=90); plt.close(fig)


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Under ``torchrun`` (WORLD_SIZE > 1): join the process group (NCCL on CUDA, Gloo on
    CPU) and pin one GPU per local rank. Returns (rank, world size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch.distributed as dist
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


@dataclass
class TrainingRun:
    """What one training run holds between steps: the model (and its DDP wrapper), optimiser,
    loss scaler, EMA, the step reached and where the learning-rate warm-up (re)starts."""
    cfg: ModelConfig
    model: torch.nn.Module
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: EMA | None
    step: int
    warmup_from: int | None
    amp: bool
    amp_dtype: torch.dtype
    channels_last: bool


def select_device(args: argparse.Namespace) -> tuple[int, int, torch.device]:
    """(rank, world size, device): CUDA when ``--device auto`` finds one, else the CPU."""
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    return init_distributed(device)


def parse_stage_steps(text: str) -> list[int]:
    bounds = [int(s) for s in text.split(",")]
    if len(bounds) != 3:
        raise SystemExit("--stage-steps needs three comma-separated numbers: ntc,jscc,compat")
    return bounds


def build_run(args: argparse.Namespace, device: torch.device, world: int, ckpt: dict | None,
              ckpt_path: Path) -> TrainingRun:
    """The model, optimiser and EMA, resumed from ``ckpt``, else initialised from
    ``--init-from``, else fresh."""
    cfg, trained = training_config(args, ckpt)
    widen = trained.rate_levels != cfg.rate_levels

    def carried(state: dict) -> dict:  # weights of the trained rate-level table, adapted to this run's
        return adapt_rate_levels(state, trained, cfg) if widen else state
    model = NTSCCPlus(cfg).to(device)
    amp, amp_dtype = mixed_precision(args.amp, device)
    channels_last = device.type == "cuda" or amp  # oneDNN's bf16 convolutions want NHWC too
    if channels_last:  # before DDP wraps it: its gradient buckets follow the parameters' strides
        model.to(memory_format=torch.channels_last)
    net = model
    if world > 1:  # each rank draws its own crops; gradients are averaged by DDP
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)
    # fused: one pass over the 6 M parameters instead of several (CPU: 12 -> 3.7 ms per step)
    opt = torch.optim.Adam(param_groups(model, args.lr, args.response_lr_mult, args.rate_lr_mult), lr=args.lr,
                           fused=device.type in ("cpu", "cuda"))
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
    logger.info("precision: %s", f"{args.amp} autocast" if amp else "float32")
    step, warmup_from = 0, None
    if ckpt is not None:
        load_state(model, carried(ckpt["model"])); step = ckpt["step"]
        if widen:  # a new codeword width: the Adam moments do not fit, start them afresh
            warmup_from = step
        else:
            try:
                restore_optimizer(opt, ckpt["opt"])
            except ValueError:  # other groups (an older checkpoint with one group, or parameters
                # added to the model since, e.g. the JSCC bypass): fresh Adam moments, warmed up
                warmup_from = step
        logger.info(f"resuming {ckpt_path} at step {step}")
    elif args.init_from:
        init = load_model(args.init_from, device)
        load_state(model, carried(init.state_dict()))
        step = int(read_metadata(args.init_from)["info"].get("step", 0))  # the step count goes on
        warmup_from = step
        if args.rate_slope is not None:
            model.rate_response.spread(args.rate_slope)
            logger.info("rate response re-initialised (slope %g): log r_global = %s", args.rate_slope,
                        [round(v, 3) for v in model.rate_response.log_r_global.tolist()])
        logger.info(f"initialised from {args.init_from}")
    else:
        warmup_from = 0
    ema = EMA(model, args.ema) if args.ema else None
    if ema and ckpt is not None and "ema" in ckpt:
        ema.resume(carried(ckpt["ema"]))
    return TrainingRun(cfg, model, net, opt, scaler, ema, step, warmup_from, amp, amp_dtype, channels_last)


LOG_COLUMNS = ["step", "stage", "loss", "psnr", "cbr", "lam", "eta", "snr", "sec_per_step", "time"]


def open_step_log(log_path: Path, step: int):
    """The per-step CSV, appended to (cut back to the checkpoint's step when resuming)."""
    new_log = not log_path.exists()
    if not new_log:
        trim_log(log_path, step)
    log = open(log_path, "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(LOG_COLUMNS)
    return log, writer


def train_step(run: TrainingRun, args: argparse.Namespace, stage: str, total: int, device: torch.device,
               sampler: CropSampler, rng: random.Random) -> tuple[torch.Tensor, float, float, tuple]:
    """One optimiser step: (loss, batch PSNR, batch CBR, the drawn (λ, η, SNR))."""
    for g in run.opt.param_groups:
        g["lr"] = g["lr_mult"] * lr_at(run.step, total, args.lr, args.lr_final, run.warmup_from, args.warmup)
    x = sampler.batch(args.batch).to(device)
    if run.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    lam, eta, snr = (t.to(device) for t in sample_conditions(stage, run.cfg, args.batch, rng, args.lambda_draw))
    loss, mse255, _rate, out_d = forward_loss(run.net, x, lam, eta, snr, stage, args.dist_scale,
                                              args.ntc_weight, run.amp, run.amp_dtype)
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.opt)
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 5.0)
    run.scaler.step(run.opt); run.scaler.update()
    if run.ema:
        run.ema.update(run.model)
    run.step += 1
    psnr = float((10 * torch.log10(255.0 ** 2 / mse255.detach().clamp_min(1e-6))).mean())
    cbr = float((out_d["k_bar"].float().sum(dim=(1, 2)) / (3 * x.shape[-1] * x.shape[-2])).mean())
    return loss, psnr, cbr, (lam, eta, snr)


def all_ranks_stop(stop: bool, world: int, device: torch.device) -> bool:
    """Every rank stops at the same step, or DDP would hang."""
    if world <= 1:
        return stop
    import torch.distributed as dist
    flag = torch.tensor([float(stop)], device=device)
    dist.all_reduce(flag)
    return bool(flag.item() > 0)


def main(args: argparse.Namespace) -> int:
    try:
        from tqdm import tqdm
    except ImportError:  # a bare GPU machine: no progress bar, the log CSV still says everything
        tqdm = _NoBar
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = select_device(args)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    args.export = args.export or str(out / "candidate.safetensors")
    if rank == 0:
        (out / "train.pid").write_text(str(os.getpid()))
    bounds = parse_stage_steps(args.stage_steps)
    total = sum(bounds)
    ckpt_path = out / "last.pt"
    ckpt = torch.load(ckpt_path, map_location=device, weights_only=True) if ckpt_path.exists() else None
    torch.manual_seed(args.seed)  # a fresh network's initial weights, reproducible
    run = build_run(args, device, world, ckpt, ckpt_path)
    seed = args.seed + run.step + 1000 * rank
    sampler = CropSampler(args.data, args.crop, seed, args.flat_fraction)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    log_path = out / ("log.csv" if rank == 0 else f"log.rank{rank}.csv")
    if rank == 0:
        (out / "command.txt").write_text("ntscc-xr train " + " ".join(sys.argv[2:]) + "\n")
    log, writer = open_step_log(log_path, run.step)
    stop_signal = StopSignal()
    t_start, t_last = time.time(), time.time()
    bar = tqdm(total=total, initial=run.step, desc="train", file=sys.stderr, mininterval=5,
               disable=rank != 0)
    while run.step < total:
        stage = stage_of(run.step, bounds)
        loss, psnr, cbr, (lam, eta, snr) = train_step(run, args, stage, total, device, sampler, rng)
        now = time.time()
        writer.writerow([run.step, stage, f"{loss.detach().item():.5f}", f"{psnr:.3f}", f"{cbr:.5f}",
                         f"{lam.float().mean():.4f}", f"{eta.float().mean():.4f}",
                         f"{snr.float().mean():.2f}", f"{now - t_last:.3f}", int(now)])
        t_last = now
        bar.update(1); bar.set_postfix(stage=stage, psnr=f"{psnr:.2f}", cbr=f"{cbr:.4f}")
        stop = bool(args.max_minutes and (now - t_start) > 60 * args.max_minutes) or stop_signal.requested
        stop = all_ranks_stop(stop, world, device)
        if rank == 0 and (run.step % args.ckpt_every == 0 or run.step == total or stop):
            log.flush()
            save_checkpoint(run.model, run.opt, run.step, run.cfg, out, args, stage, run.ema)
            plot_curves(log_path, out / "curves.png")
        if stop:
            logger.info(f"stopping at step {run.step} ({stop_signal.reason or f'{args.max_minutes} min'})")
            break
    bar.close(); log.close()
    stop_signal.restore()
    if world > 1:
        import torch.distributed as dist
        dist.destroy_process_group()
    return 0


def forward_loss(net: torch.nn.Module, x: torch.Tensor, lam: torch.Tensor, eta: torch.Tensor,
                 snr: torch.Tensor, stage: str, dist_scale: float, ntc_weight: float,
                 amp: bool = False, amp_dtype: torch.dtype = torch.bfloat16):
    """One training stage's forward pass (under autocast when ``amp``) and its loss (eq. 7):
    (loss, mse255, rate, outputs in float32). The training loop and tools/bench_train_step.py
    both run it, so the benchmark times the step the trainer takes."""
    jscc = stage != "ntc"
    with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp):
        out = net(x, lam, eta, snr, jscc=jscc, ntc_proxy=jscc and ntc_weight > 0)
    out = {k: v.float() for k, v in out.items()}
    loss, mse255, rate = rd_loss(out, x, lam, eta, dist_scale, ntc_weight)
    return loss, mse255, rate, out


def mixed_precision(amp: str, device: torch.device) -> tuple[bool, torch.dtype]:
    """(autocast on, its dtype) for ``--amp`` on ``device``.

    bf16 only where the device computes it natively: emulated bf16 on a CPU without AVX-512 BF16
    is 2-4x slower than float32. fp16 needs CUDA (loss scaling by GradScaler).
    """
    if amp == "fp16":
        return device.type == "cuda", torch.float16
    return amp == "bf16" and native_bf16(device), torch.bfloat16


class StopSignal:
    """SIGTERM / SIGINT ask the training loop to finish its step, checkpoint and stop, so that a
    ``kill`` (or the end of a work session) loses no steps since the last checkpoint."""

    def __init__(self) -> None:
        self.requested, self.reason = False, ""
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore(self) -> None:
        """Give the process its former handlers back (training can run inside a test or a tool)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, _frame) -> None:
        if self.requested:  # a second signal: stop now, without the checkpoint
            raise KeyboardInterrupt
        self.requested, self.reason = True, signal.Signals(signum).name


def trim_log(log_path: Path, step: int) -> None:
    """Drop log rows past the resumed checkpoint's step (the steps an interrupted run redoes),
    so the resumed log has each step once."""
    with open(log_path, newline="") as f:
        rows = list(csv.reader(f))
    kept, seen = rows[:1], set()
    for row in rows[1:]:
        if row and row[0].isdigit() and int(row[0]) <= step and row[0] not in seen:
            seen.add(row[0])
            kept.append(row)
    with open(log_path, "w", newline="") as f:
        csv.writer(f).writerows(kept)


def save_checkpoint(model, opt, step, cfg, out: Path, args, stage: str, ema: EMA | None = None) -> None:
    tmp = out / "last.pt.tmp"
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "config": cfg.to_dict()}
    if ema:
        state["ema"] = ema.state
    torch.save(state, tmp)
    os.replace(tmp, out / "last.pt")  # atomic: a kill mid-save never corrupts the checkpoint
    if args.export:
        exported = model
        if ema:  # export the averaged weights
            exported = copy.deepcopy(model)
            ema.copy_to(exported)
        export_weights(exported, args.export, {"step": step, "stage": stage, "config_name": cfg.name,
                                               "trained_on": Path(args.data).name, "crop": args.crop,
                                               "batch": args.batch, "ema": args.ema})
