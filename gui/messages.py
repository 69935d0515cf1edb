"""The receiver's metrics message, as the viewer reads it (and as tests / the replay build it).

``rx/app.py`` publishes one multipart ZeroMQ message per decoded frame on the metrics
endpoint::

    [b"M", json(row), json(shape), reconstruction RGB uint8 (H*W*3, ERP),
     complex64 equalised symbols (<= 512), float32 per-subcarrier SNR (dB)
     (, optional: reference RGB uint8, same shape)]

The optional 7th part is the original ERP frame. Without it the viewer reads the original
itself (:mod:`gui.reference`). Torch-free and Qt-free.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

TOPIC = b"M"
MAX_SIDE = 8192  # refuse absurd shapes before allocating

#: Row keys the viewer uses (rx.app.METRIC_FIELDS); missing keys read as NaN / None.
NUMERIC_KEYS = ("psnr", "ws_psnr", "viewport_psnr", "roi_psnr", "cbr", "snr_true_db", "cqi_db",
                "encode_ms", "air_ms", "decode_ms", "lam", "eta_scale", "mcs", "qp", "olla_margin_db",
                "yaw", "pitch", "fov", "budget", "viewport_msssim")


class MessageError(ValueError):
    """A metrics message the viewer cannot use (it is dropped and counted)."""


def num(value) -> float:
    """Row value as float; None, strings and missing values become NaN."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return v


@dataclass
class FrameMessage:
    row: dict
    image: np.ndarray | None            # (H, W, 3) uint8 reconstruction, ERP
    symbols: np.ndarray                 # complex64 equalised symbols (constellation)
    subcarrier_snr_db: np.ndarray       # float32
    reference: np.ndarray | None = None  # original ERP frame when the RX sends it
    t_recv: float = 0.0                 # time.monotonic() at arrival
    extra: dict = field(default_factory=dict)

    @property
    def stream(self) -> str:
        return str(self.row.get("stream", "learned"))

    @property
    def frame_id(self) -> int:
        try:
            return int(self.row.get("frame_id", -1))
        except (TypeError, ValueError):
            return -1

    @property
    def status(self) -> str:
        return str(self.row.get("status", "ok"))

    def value(self, key: str) -> float:
        return num(self.row.get(key))


def _image(buf: bytes, shape) -> np.ndarray | None:
    if not buf:
        return None
    if (not isinstance(shape, list) or len(shape) != 3 or shape[2] != 3
            or not all(isinstance(s, int) and 0 < s <= MAX_SIDE for s in shape)):
        raise MessageError(f"bad image shape {shape!r}")
    if len(buf) != shape[0] * shape[1] * 3:
        raise MessageError(f"image of {len(buf)} bytes does not match shape {shape}")
    return np.frombuffer(buf, np.uint8).reshape(shape)


def parse(parts: list[bytes], t_recv: float = 0.0) -> FrameMessage:
    """Multipart message -> :class:`FrameMessage`; raises :class:`MessageError`."""
    if len(parts) < 6 or parts[0] != TOPIC:
        raise MessageError(f"not a metrics message ({len(parts)} parts)")
    try:
        row = json.loads(parts[1])
        shape = json.loads(parts[2]) if parts[2] else []
    except ValueError as exc:
        raise MessageError(f"bad JSON: {exc}") from None
    if not isinstance(row, dict):
        raise MessageError("row is not a JSON object")
    image = _image(parts[3], shape)
    if len(parts[4]) % 8 or len(parts[5]) % 4:
        raise MessageError("symbol / subcarrier buffers have a partial element")
    symbols = np.frombuffer(parts[4], np.complex64)
    sc = np.frombuffer(parts[5], np.float32)
    reference = None
    if len(parts) > 6 and parts[6]:
        reference = _image(parts[6], shape)
    return FrameMessage(row, image, symbols, sc, reference, t_recv)


def build(row: dict, image: np.ndarray | None, symbols: np.ndarray | None = None,
          subcarrier_snr_db: np.ndarray | None = None,
          reference: np.ndarray | None = None) -> list[bytes]:
    """The multipart message exactly as ``rx.app.Receiver._publish`` sends it (+ reference)."""
    sym = np.zeros(0, np.complex64) if symbols is None else np.asarray(symbols, np.complex64)[:512]
    sc = b"" if subcarrier_snr_db is None else np.asarray(subcarrier_snr_db, np.float32).tobytes()
    parts = [TOPIC, json.dumps(row, default=float).encode(),
             json.dumps(list(image.shape) if image is not None else []).encode(),
             b"" if image is None else np.ascontiguousarray(image, np.uint8).tobytes(),
             sym.tobytes(), sc]
    if reference is not None:
        parts.append(np.ascontiguousarray(reference, np.uint8).tobytes())
    return parts


def finite(v: float) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)
