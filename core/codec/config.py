"""Model configurations: one dataclass, a registry of named presets (CompressAI-style)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

#: SQI grid Λ of the paper (Sec. VI-B): λ values with a learned global rate scalar each.
LAMBDAS: tuple[float, ...] = (0.013, 0.0483, 0.18, 0.36, 0.72)
#: CQI grid: a learned global SNR scalar every 3 dB, covering 0–14 dB (15 is the last knot).
SNR_GRID_DB: tuple[float, ...] = (0.0, 3.0, 6.0, 9.0, 12.0, 15.0)
#: Bandwidth-factor range η of compatible training; inference (evaluation grids, the live
#: transmitter's rate controller) stays inside the range a model was trained on.
ETA_RANGE: tuple[float, float] = (0.05, 0.4)
#: Symbols-per-position levels of the rate quantiser Q (16 levels -> 4-bit rate index).
#: The top was 96 (with 80 below it) up to step 43 096: at η 0.8 and λ 0.72, 66 % of the latent
#: positions sat at 96 (docs/results/transform_ceiling_step37912.md), so 80 gave way to 128; the
#: trained weights were carried over by :mod:`core.codec.widen`.
RATE_LEVELS: tuple[int, ...] = (1, 2, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128)


@dataclass
class ModelConfig:
    """Everything that shapes a model; saved inside every checkpoint.

    ``stage_channels``/``stage_blocks`` describe the 4 stride-2 stages of g_a (g_s mirrors
    them). ``block`` is ``"restb"`` (windowed-attention residual Transformer block, the
    paper's) or ``"res"`` (conv residual block, cheap on a CPU).
    """

    name: str
    stage_channels: tuple[int, int, int, int]
    stage_blocks: tuple[int, int, int, int]
    block: str = "res"
    window: int = 7
    hyper_channels: int = 128
    jscc_dim: int = 128
    jscc_blocks: int = 2
    jscc_heads: int = 4
    jscc_window: int = 5
    rate_levels: tuple[int, ...] = RATE_LEVELS
    lambdas: tuple[float, ...] = LAMBDAS
    snr_grid_db: tuple[float, ...] = SNR_GRID_DB
    eta_range: tuple[float, float] = ETA_RANGE  # trained η range (not architecture: may widen)
    lambda0: float = 0.18  # the default SQI used before compatible fine-tuning
    snr0_db: float = 10.0  # the default CQI used before compatible fine-tuning
    eta0: float = 0.2
    #: The JSCC branches also see the hyperprior's prior (μ, log σ) of every latent element, which
    #: a receiver can rebuild only from z sent on the air (NTSCC's side information; the NTSCC+
    #: paper leaves z out, Sec. II), in their blocks and linearly at their outputs (so the
    #: encoders can send the innovation y − μ and the decoders add μ back). Why: a linear
    #: mapping of y − μ by σ, given z for free, beat the JSCC by ~1.5 dB at CBR 0.08
    #: (docs/results/transform_ceiling_step91457.md). Off in shipped configs.
    jscc_prior: bool = False

    @property
    def latent_channels(self) -> int:
        return self.stage_channels[-1]

    @property
    def max_symbols(self) -> int:
        return max(self.rate_levels)

    def to_dict(self) -> dict:
        return asdict(self)

    def extends(self, other: "ModelConfig") -> bool:
        """True when this network is ``other``'s with only zero-initialised parts added (the
        JSCC prior), so ``other``'s weights carry over and compute the same at first."""
        return (self.jscc_prior and not other.jscc_prior
                and self.same_architecture(other, ignore=("name", "jscc_prior", "rate_levels")))

    def same_architecture(self, other: "ModelConfig", ignore: tuple[str, ...] = ()) -> bool:
        """True when both describe the same network (everything but the trained η range and
        the fields in ``ignore``, e.g. ``("rate_levels",)``, which :mod:`core.codec.widen` adapts)."""
        mine, theirs = self.to_dict(), other.to_dict()
        for key in ("eta_range", *ignore):
            mine.pop(key), theirs.pop(key)
        return mine == theirs

    def clip_eta(self, eta: float) -> float:
        """η clamped to the trained range."""
        lo, hi = self.eta_range
        return float(min(hi, max(lo, eta)))

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        for key in ("stage_channels", "stage_blocks", "rate_levels", "lambdas", "snr_grid_db", "eta_range"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


CONFIGS: dict[str, ModelConfig] = {
    # The paper's architecture (Sec. VI-A): N=192, M=320, ResTB counts (1,2,6,2), 4+4 JSCC
    # ViT blocks. Meant for a GPU.
    "paper": ModelConfig(name="paper", stage_channels=(192, 192, 192, 320),
                         stage_blocks=(1, 2, 6, 2), block="restb", window=7,
                         hyper_channels=192, jscc_dim=256, jscc_blocks=4, jscc_heads=8),
    # Sized for a 2-core CPU: trains here; encodes + decodes 768x512 in ~0.27 s (2 threads).
    "small": ModelConfig(name="small", stage_channels=(64, 80, 96, 128),
                         stage_blocks=(0, 1, 1, 1), block="res", hyper_channels=96,
                         jscc_dim=128, jscc_blocks=2, jscc_heads=4),
    # Unit tests only: random weights, runs in milliseconds.
    "tiny": ModelConfig(name="tiny", stage_channels=(8, 8, 12, 16), stage_blocks=(0, 0, 0, 1),
                        block="restb", window=3, hyper_channels=8, jscc_dim=16, jscc_blocks=1,
                        jscc_heads=2, jscc_window=3,
                        rate_levels=(1, 2, 3, 4, 6, 8, 12, 16)),
}


#: The small network with the JSCC prior (z on the air): an experiment, not shipped.
CONFIGS["small_prior"] = replace(CONFIGS["small"], name="small_prior", jscc_prior=True)


def get_config(name: str) -> ModelConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown model config {name!r}; choose one of {sorted(CONFIGS)}") from None
