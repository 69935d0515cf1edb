"""Compatible NTSCC+ (paper Sec. II-IV): one model, any SQI λ, bandwidth factor η and CQI ν.

Transmit pipeline for one image x (eq. 1, 9-18):

1. ẏ = g_a(x); y = ẏ ⊘ q_rate(λ)                                    (rate response, eq. 13)
2. hyperprior features h_s(z), z = h_a(y) (z stays at the transmitter: not sent, Sec. II)
3. anchors: entropy from the hyperprior only -> k̄_A = Q(η·bits_A) -> s_A = f_e,a(y_A)
4. simulate the channel + anchor decoder locally: y'_A = mean of n draws  (eq. 10)
5. non-anchors: entropy with the context g_cm(y'_A) -> k̄_Ā -> s_Ā = f_e,na(y_Ā | y'_A)
6. send s_A then s_Ā (each power-normalised) plus the rate-index map as side information.

The receiver decodes the anchors, then the non-anchors conditioned on them, multiplies by
q_rate(λ) and runs g_s.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .entropy import CheckerboardEntropyModel
from .jscc import ContextualJSCC, RateQuantizer, RateResponse, active_mask, awgn, pack_symbols, unpack_symbols
from .layers import checkerboard_mask
from .transforms import AnalysisTransform, SynthesisTransform

LATENT_STRIDE = 16
TX_SIMULATION_SEED = 20240601


def _batch(value, b: int, device) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32, device=device)
    return t.expand(b).clone() if t.dim() == 0 else t.to(torch.float32)


def pad_to_multiple(x: torch.Tensor, multiple: int = LATENT_STRIDE) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x


@dataclass
class Transmission:
    """What the transmitter sends for one image (the receiver needs exactly this).

    ``symbols`` holds the anchors' active symbols then the non-anchors' (complex64, unit
    average power per branch). ``rate_index`` is the side information (B=1, h, w) long.
    """

    symbols: torch.Tensor
    rate_index: torch.Tensor
    image_size: tuple[int, int]
    lam: float
    snr_db: float
    n_anchor_symbols: int
    bits_per_position: torch.Tensor | None = None  # transmitter-side entropy, for analysis


NO_Z_ON_AIR = ("a jscc_prior model needs the hyperprior z at the receiver, which the side information "
                "does not carry yet: it trains and evaluates through forward() only")


class NTSCCPlus(nn.Module):
    """Compatible NTSCC+ model (contextual JSCC + rate and SNR response networks)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        m = cfg.latent_channels
        self.g_a = AnalysisTransform(cfg)
        self.g_s = SynthesisTransform(cfg)
        self.entropy = CheckerboardEntropyModel(m, cfg.hyper_channels)
        self.rate_response = RateResponse(cfg.lambdas, m)
        self.jscc = ContextualJSCC(cfg)
        self.quantizer = RateQuantizer(cfg.rate_levels)

    # ------------------------------------------------------------------ shared pieces
    def analysis(self, x: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (y, anchor mask) for images already padded to a multiple of 16."""
        y_dot = self.g_a(x)
        anchor = checkerboard_mask(*y_dot.shape[-2:], anchors=True, device=x.device)
        return y_dot / self.rate_response.scale(lam, anchor), anchor

    def synthesis(self, y_hat: torch.Tensor, lam: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        return self.g_s(y_hat * self.rate_response.scale(lam, anchor))

    def _rates(self, bits: torch.Tensor, eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k̄ and rate index from per-position bits; eta is (B,) or a (B, H, W) map."""
        eta_map = eta.view(-1, 1, 1) if eta.dim() == 1 else eta
        idx = self.quantizer.index(eta_map * bits)
        return self.quantizer.symbols(idx), idx

    def _jscc_prior(self, hyper_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The hyperprior's (μ, σ) for a ``jscc_prior`` model, else None. Detached: the JSCC's
        distortion must not train the entropy model, whose bits decide the symbol counts (with
        gradients through it, 800 steps raised the CBR at equal (λ, η) by 8-10 %)."""
        if not self.cfg.jscc_prior:
            return None
        with torch.no_grad():
            return self.entropy.hyper_prior(hyper_feat)

    def _anchor_estimate(self, s_a, idx, k_bar, snr, anchor, draws: int,
                         generator: torch.Generator | None = None, prior=None) -> torch.Tensor:
        """y'_A: the transmitter's average of ``draws`` simulated receiver anchor decodes (eq. 10).

        At inference a fixed-seed generator makes the simulation — hence the non-anchor rate
        map — a deterministic function of the image and (λ, η, ν).
        """
        mask = active_mask(k_bar, self.cfg.max_symbols) * anchor
        est = 0
        for _ in range(draws):
            noisy = awgn(s_a, mask, snr, generator)
            est = est + self.jscc.decode(noisy, idx, k_bar, snr, True, anchor, prior=prior)
        return est / draws

    # ------------------------------------------------------------------ training
    def forward(self, x: torch.Tensor, lam, eta, snr_db, jscc: bool = True,
                eta_map: torch.Tensor | None = None, ntc_proxy: bool = False) -> dict[str, torch.Tensor]:
        """Differentiable end-to-end pass used for training and evaluation.

        With ``jscc=False`` (training stage 1) the channel is replaced by the additive
        uniform-noise proxy ŷ = y + U(-1/2, 1/2): the transform + entropy model pretraining.
        Returns x_hat, per-position bits (B, h, w), bits_z (B,), k_bar (B, h, w) and the
        continuous symbol demand k (B, h, w) used by the rate loss.

        With ``ntc_proxy=True`` (and ``jscc=True``) it also returns ``x_ntc`` = g_s(y + U), the
        transform-coding reconstruction of the same latent: its distortion is the only term of
        the loss that ties the entropy (hence the symbol count) to quality, because the rate
        quantiser Q is not differentiable.
        """
        lam_t = _batch(lam, x.shape[0], x.device)
        y, anchor = self.analysis(x, lam_t)
        return self.forward_latent(y, anchor, lam_t, eta, snr_db, jscc, eta_map, ntc_proxy)

    def forward_latent(self, y: torch.Tensor, anchor: torch.Tensor, lam, eta, snr_db,
                       jscc: bool = True, eta_map: torch.Tensor | None = None,
                       ntc_proxy: bool = False) -> dict[str, torch.Tensor]:
        """:meth:`forward` from the latent y onwards (used by NTSCC++ online editing)."""
        b = y.shape[0]
        lam, eta, snr = (_batch(v, b, y.device) for v in (lam, eta, snr_db))
        eta_eff = eta if eta_map is None else eta_map
        hyper, bits_z = self.entropy.hyper(y)
        bits_a = self.entropy.anchor_bits(y, hyper)
        if not jscc:
            y_tilde = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else torch.round(y)
            bits_na = self.entropy.nonanchor_bits(y, hyper, y)
            bits = torch.where(anchor[:, 0].bool(), bits_a, bits_na)
            k_bar, _ = self._rates(bits, eta_eff)
            return dict(x_hat=self.synthesis(y_tilde, lam, anchor), bits=bits, bits_z=bits_z,
                        k_bar=k_bar, k=self._demand(bits, eta_eff))
        prior = self._jscc_prior(hyper)
        k_a, idx_a = self._rates(bits_a, eta_eff)
        s_a = self.jscc.encode(y, idx_a, k_a, snr, True, anchor, prior=prior)
        y_ctx = self._anchor_estimate(s_a, idx_a, k_a, snr, anchor, draws=1, prior=prior)
        bits_na = self.entropy.nonanchor_bits(y, hyper, y_ctx)
        k_na, idx_na = self._rates(bits_na, eta_eff)
        s_na = self.jscc.encode(y, idx_na, k_na, snr, False, anchor, context=y_ctx, prior=prior)
        # the real channel, then the receiver
        mask_a = active_mask(k_a, self.cfg.max_symbols) * anchor
        mask_na = active_mask(k_na, self.cfg.max_symbols) * (1 - anchor)
        y_hat_a = self.jscc.decode(awgn(s_a, mask_a, snr), idx_a, k_a, snr, True, anchor, prior=prior)
        y_hat_na = self.jscc.decode(awgn(s_na, mask_na, snr), idx_na, k_na, snr, False, anchor,
                                    context=y_hat_a, prior=prior)
        y_hat = y_hat_a * anchor + y_hat_na * (1 - anchor)
        is_anchor = anchor[:, 0].bool()
        bits = torch.where(is_anchor, bits_a, bits_na)
        out = dict(x_hat=self.synthesis(y_hat, lam, anchor), bits=bits, bits_z=bits_z,
                   k_bar=torch.where(is_anchor, k_a, k_na), k=self._demand(bits, eta_eff))
        if ntc_proxy:
            out["x_ntc"] = self.synthesis(y + torch.empty_like(y).uniform_(-0.5, 0.5), lam, anchor)
        return out

    @staticmethod
    def _demand(bits: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
        return (eta.view(-1, 1, 1) if eta.dim() == 1 else eta) * bits

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def transmit(self, x: torch.Tensor, lam: float, eta: float | torch.Tensor, snr_db: float,
                 context_draws: int = 1) -> Transmission:
        """Encode one image (1, 3, H, W) in [0, 1] into channel symbols + side information.

        ``eta`` may be a scalar or a (h, w) per-position map (ROI transmission).
        """
        if x.shape[0] != 1:
            raise ValueError("transmit() takes one image at a time")
        y, anchor = self.analysis(pad_to_multiple(x), _batch(lam, 1, x.device))
        return self.transmit_latent(y, anchor, tuple(x.shape[-2:]), lam, eta, snr_db, context_draws)

    @torch.no_grad()
    def transmit_latent(self, y: torch.Tensor, anchor: torch.Tensor, image_size: tuple[int, int],
                        lam: float, eta, snr_db: float, context_draws: int = 1) -> Transmission:
        """:meth:`transmit` from the latent y onwards (the NTSCC++ edited latent, say)."""
        h0, w0 = image_size
        if self.cfg.jscc_prior:
            raise NotImplementedError(NO_Z_ON_AIR)
        snr = _batch(snr_db, 1, y.device)
        eta_t = torch.as_tensor(eta, dtype=torch.float32, device=y.device)
        eta_t = eta_t.view(1) if eta_t.dim() == 0 else eta_t.view(1, *eta_t.shape[-2:])
        hyper, _ = self.entropy.hyper(y)
        bits_a = self.entropy.anchor_bits(y, hyper)
        k_a, idx_a = self._rates(bits_a, eta_t)
        s_a = self.jscc.encode(y, idx_a, k_a, snr, True, anchor)
        gen = torch.Generator(device=y.device).manual_seed(TX_SIMULATION_SEED)
        y_ctx = self._anchor_estimate(s_a, idx_a, k_a, snr, anchor, context_draws, gen)
        bits_na = self.entropy.nonanchor_bits(y, hyper, y_ctx)
        k_na, idx_na = self._rates(bits_na, eta_t)
        s_na = self.jscc.encode(y, idx_na, k_na, snr, False, anchor, context=y_ctx)
        is_anchor = anchor[:, 0].bool()
        idx = torch.where(is_anchor, idx_a, idx_na)
        flat_a = pack_symbols(s_a, k_a, anchor)
        flat_na = pack_symbols(s_na, k_na, 1 - anchor)
        return Transmission(symbols=torch.cat([flat_a, flat_na]).to(torch.complex64),
                            rate_index=idx, image_size=(h0, w0), lam=float(lam),
                            snr_db=float(snr_db), n_anchor_symbols=flat_a.numel(),
                            bits_per_position=torch.where(is_anchor, bits_a, bits_na))

    @torch.no_grad()
    def receive(self, symbols: torch.Tensor, rate_index: torch.Tensor, image_size: tuple[int, int],
                lam: float, snr_db: float) -> torch.Tensor:
        """Decode received symbols (same layout as :attr:`Transmission.symbols`) -> (1, 3, H, W)."""
        if self.cfg.jscc_prior:
            raise NotImplementedError(NO_Z_ON_AIR)
        device = rate_index.device
        lam_t, snr = _batch(lam, 1, device), _batch(snr_db, 1, device)
        anchor = checkerboard_mask(*rate_index.shape[-2:], anchors=True, device=device)
        k_bar = self.quantizer.symbols(rate_index)
        n_a = int((active_mask(k_bar, self.cfg.max_symbols) * anchor)[:, :self.cfg.max_symbols].sum())
        symbols = torch.nan_to_num(symbols.to(device).to(torch.complex64))
        s_a = unpack_symbols(symbols[:n_a], k_bar, anchor, self.cfg.max_symbols)
        s_na = unpack_symbols(symbols[n_a:], k_bar, 1 - anchor, self.cfg.max_symbols)
        y_a = self.jscc.decode(s_a, rate_index, k_bar, snr, True, anchor)
        y_na = self.jscc.decode(s_na, rate_index, k_bar, snr, False, anchor, context=y_a)
        y_hat = y_a * anchor + y_na * (1 - anchor)
        x_hat = self.synthesis(y_hat, lam_t, anchor).clamp(0, 1)
        return x_hat[..., :image_size[0], :image_size[1]]
