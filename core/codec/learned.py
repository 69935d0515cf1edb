"""The learned chain as the rest of the system sees it: RGB image in, channel symbols +
side-information bytes out, and back.

:class:`LearnedCodec` wraps a :class:`core.codec.model.NTSCCPlus` with numpy in/out, device
handling (``auto`` = CUDA when present, else CPU) and the side-information format, so TX, RX
and the evaluation harness share one code path.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.link import sidepart

from . import ratemap
from .checkpoint import load_model
from .model import NTSCCPlus
from .sideinfo import SideInfo, cbr


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but no CUDA GPU is visible; use --device cpu")
    return torch.device(name)


@dataclass
class EncodedImage:
    symbols: np.ndarray  # complex64, anchors then non-anchors, unit average power
    side: bytes
    cbr: float
    height: int
    width: int
    #: offline transmissions (:meth:`LearnedCodec.transmit_awgn`): whether the side part
    #: arrived (its CRC passed); None when not transmitted
    side_ok: bool | None = None

    @property
    def n_symbols(self) -> int:
        return int(self.symbols.size)


class LearnedCodec:
    """Compatible NTSCC+ transmitter + receiver with numpy I/O.

    Parameters
    ----------
    model : NTSCCPlus, optional
        A loaded model; the shipped checkpoint is loaded when omitted.
    device : str
        ``auto`` (CUDA if present), ``cpu`` or ``cuda``.
    fast : bool
        Encode and decode with the inference fast path (:mod:`core.codec.fast`: bf16 autocast
        where the device computes bf16 natively, g_a on ONNX Runtime where it does not, and on
        any CPU g_s's last up-convolution as an exact sub-pixel convolution), prepared from the
        same weights at start-up.
        ``self.model`` stays the float32 model (training, NTSCC++ editing, which always use it).
        ``bf16`` forces bf16 autocast on or off (default: on where native).
    """

    def __init__(self, model: NTSCCPlus | None = None, device: str = "auto",
                 weights: str | None = None, fast: bool = False, bf16: bool | None = None):
        self.device = pick_device(device)
        self.model = (model or load_model(weights)).to(self.device).eval()
        self.fast = None
        self.fast_options = None
        if fast:
            from .fast import prepare_fast
            self.fast, self.fast_options = prepare_fast(self.model, self.device, bf16=bf16)
        ratemap.warm_up()

    @property
    def inference_model(self) -> NTSCCPlus:
        """The model that encode (without editing) and decode run: the fast one when enabled."""
        return self.fast if self.fast is not None else self.model

    @property
    def levels(self) -> tuple[int, ...]:
        return self.model.cfg.rate_levels

    def _tensor(self, rgb: np.ndarray) -> torch.Tensor:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
        rgb = np.ascontiguousarray(rgb)
        if not rgb.flags.writeable:  # e.g. frames decoded straight from a ZMQ buffer
            rgb = rgb.copy()
        return torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255).to(self.device)

    def encode(self, rgb: np.ndarray, lam: float, eta: float | np.ndarray, snr_db: float,
               context_draws: int = 1, edit_steps: int = 0,
               quality: np.ndarray | None = None, msssim_weight: float = 0.0) -> EncodedImage:
        """Encode an RGB uint8 image.

        ``eta`` may be an (h, w) per-latent-position map (ROI). ``edit_steps`` > 0 runs NTSCC++
        online editing (T steps) first, with the optional per-pixel ROI ``quality`` map m and
        the eq.-21 MS-SSIM weight ``msssim_weight`` (see :func:`core.codec.online.edit_and_transmit`).
        """
        eta_t = torch.as_tensor(eta, dtype=torch.float32, device=self.device)
        if edit_steps > 0:
            from .online import edit_and_transmit
            q = None if quality is None else torch.from_numpy(quality).to(self.device)
            tx, _ = edit_and_transmit(self.model, self._tensor(rgb), lam, eta_t, snr_db, edit_steps, q,
                                      msssim_weight=msssim_weight)
        else:
            tx = self.inference_model.transmit(self._tensor(rgb), lam, eta_t, snr_db, context_draws)
        side = SideInfo(tx.image_size, tx.rate_index[0].to(torch.uint8).cpu().numpy(), lam, snr_db)
        side_bytes = side.to_bytes()
        sym = tx.symbols.cpu().numpy().astype(np.complex64)
        h, w = rgb.shape[:2]
        return EncodedImage(sym, side_bytes, cbr(sym.size, len(side_bytes), h, w, snr_db), h, w)

    def decode(self, symbols: np.ndarray, side: bytes | SideInfo, snr_db: float | None = None) -> np.ndarray:
        """Decode received symbols. ``snr_db`` overrides the CQI in the side information
        (the receiver's own estimate). Missing trailing symbols are decoded as erasures (0)."""
        info = side if isinstance(side, SideInfo) else SideInfo.from_bytes(side)
        idx = torch.from_numpy(info.rate_index.astype(np.int64))[None].to(self.device)
        n_expected = int(np.asarray(self.levels)[info.rate_index].sum())
        sym = np.zeros(n_expected, np.complex64)
        got = np.nan_to_num(np.asarray(symbols, np.complex64).reshape(-1)[:n_expected])
        sym[:got.size] = got
        x = self.inference_model.receive(torch.from_numpy(sym).to(self.device), idx, info.image_size,
                               info.lam, info.snr_db if snr_db is None else snr_db)
        return (x[0].permute(1, 2, 0).cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)

    def expected_symbols(self, side: bytes) -> int:
        info = SideInfo.from_bytes(side)
        return int(np.asarray(self.levels)[info.rate_index].sum())

    def transmit_awgn(self, rgb: np.ndarray, lam: float, eta, snr_db: float,
                      rng: np.random.Generator | None = None, edit_steps: int = 0,
                      quality: np.ndarray | None = None, nu_db: float | None = None,
                      rx_snr: str = "estimated", fallback: np.ndarray | None = None,
                      msssim_weight: float = 0.0) -> tuple[np.ndarray, EncodedImage]:
        """Encode, send the whole frame -- the digital side part (:mod:`core.link.sidepart`,
        really LDPC-coded, its MCS from the CQI ``snr_db`` with the 3 dB margin) and the JSCC
        symbols -- through complex AWGN at ``snr_db``, decode.

        ``nu_db``: the SNR the JSCC encoder is told (its ν; default ``snr_db``, a CQI that matches
        the channel); the side part's MCS always follows the channel's CQI. ``rx_snr``: the SNR
        the receiver uses (LLRs of the side part, the JSCC decoder's ν) -- ``"estimated"``
        (default: as the live receiver, the pilot-based estimate of the OFDM PHY for a frame of
        this many symbols, :func:`core.phy.ofdm.emulate_snr_estimate`, clipped to the model's
        0-14 dB for the decoder as the live RX does) or ``"true"`` (the channel's SNR, free help
        no receiver has).

        If the side part fails its CRC the receiver cannot decode the frame and shows
        ``fallback`` (default: mid-grey, all a receiver knows without side information);
        ``enc.side_ok`` tells which."""
        rng = rng or np.random.default_rng()
        nu = snr_db if nu_db is None else nu_db
        enc = self.encode(rgb, lam, eta, nu, edit_steps=edit_steps, quality=quality,
                          msssim_weight=msssim_weight)
        y = sidepart.awgn(self.frame_symbols(enc, snr_db), snr_db, rng)
        if rx_snr == "estimated":
            from core.phy.ofdm import emulate_snr_estimate
            est_db = float(emulate_snr_estimate(snr_db, y.size, rng))
        elif rx_snr == "true":
            est_db = snr_db
        else:
            raise ValueError(f"rx_snr must be 'estimated' or 'true', got {rx_snr!r}")
        rec, enc.side_ok = self.receive_frame(
            y, 10 ** (-est_db / 10), snr_db=float(np.clip(est_db, 0.0, 14.0)),
            fallback=fallback if fallback is not None else np.full_like(rgb, 128))
        return rec, enc

    @staticmethod
    def frame_symbols(enc: EncodedImage, cqi_db: float) -> np.ndarray:
        """All symbols of one frame on the air: the digital side part, then the JSCC symbols."""
        return np.concatenate([sidepart.encode(enc.side, cqi_db), enc.symbols])

    def receive_frame(self, y: np.ndarray, noise_var, snr_db: float | None,
                      fallback: np.ndarray) -> tuple[np.ndarray, bool]:
        """Decode a frame's symbols ``y`` (side part first): (picture, side part ok). A side
        part that fails its CRC (or does not parse) gives ``fallback``."""
        side = sidepart.decode(y, noise_var)
        if side.data is None:
            return fallback, False
        try:
            info = SideInfo.from_bytes(side.data)
            return self.decode(np.asarray(y).reshape(-1)[side.n_symbols:], info, snr_db), True
        except ValueError:
            return fallback, False
