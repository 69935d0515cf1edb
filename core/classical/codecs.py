"""Source codecs of the classical chain, each with a QP/quality ladder and exact bit counts.

=========  ===================================================================================
``vvc``    VVC intra: libvvenc through the ffmpeg of ``imageio-ffmpeg``, fixed QP (``-qpa 0``:
           vvenc's perceptual QP adaptation is on by default), 4:2:0 10-bit (the only format
           that build's vvenc takes), raw Annex-B stream; ffmpeg's native vvc decoder.
           ``preset``: ``medium`` (default, routine evaluation), ``slower`` (final tables),
           ``faster`` (live).
``hevc``   HEVC intra 4:4:4 10-bit: x265 through that ffmpeg, ``-tune psnr``, fixed QP, raw
           Annex-B stream without x265's ~2 kB settings SEI (``info=0``) -- the BPG setting
           of the paper, minus BPG's container.
``av1``    AV1 intra 4:4:4: AVIF from Pillow (libavif + aom), ``tune=psnr``, speed 4, quality
           ladder 0-100.  The byte count includes the AVIF (HEIF) container, ~300 bytes.
``av1-aom`` AV1 intra 4:4:4 10-bit: libaom through ffmpeg (``-usage allintra``, cpu-used 4,
           ``tune psnr``), raw OBU stream -- no container overhead.
``j2k``    JPEG 2000: OpenJPEG through Pillow, irreversible 9/7 with the colour transform
           (``mct=1``), raw codestream; the ladder is the compression ratio.  ``LOSSLESS``:
           reversible 5/3 (bit-exact).
``jpeg``   JPEG baseline 4:4:4 through Pillow, optimised Huffman tables, quality 1-100.
=========  ===================================================================================

RGB <-> YCbCr for the ffmpeg codecs uses swscale with accurate rounding and full chroma
interpolation, BT.709 limited range (RGB-PSNR differences between these choices were
< 0.5 % BD-rate when measured).  Images whose size the codec cannot take are edge-padded and
cropped back after decoding.

Ladders are ordered from the lowest to the highest rate.  ``decode`` raises
:class:`CodecError` when the bitstream cannot be decoded (libavcodec with ``err_detect
explode``, in process through PyAV, or the ffmpeg command with ``-xerror`` where PyAV lacks the
format); the chain then shows the per-channel mean image.

:class:`BitstreamCache` stores bitstreams and their (bits, MSE) on disk, keyed by image hash,
codec settings and QP, under ``$NTSCC_XR_CACHE`` or ``~/.cache/ntscc-xr``.
"""
from __future__ import annotations

import fractions
import functools
import hashlib
import io
import json
import math
import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "Codec", "CodecError", "CodecPoint", "BitstreamCache", "LOSSLESS",
    "CODEC_NAMES", "get_codec", "image_key", "mean_image", "mse", "psnr",
    "rd_curve", "largest_fitting", "prefill",
]

LOSSLESS = "lossless"


class CodecError(RuntimeError):
    """A bitstream could not be decoded."""


def mse(a: np.ndarray, b: np.ndarray) -> float:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    m = mse(a, b)
    return float("inf") if m == 0 else 10.0 * math.log10(255.0 ** 2 / m)


def mean_image(rgb: np.ndarray) -> np.ndarray:
    """The reconstruction after a decoding failure (paper, Appendix A): every pixel set to
    the per-channel mean of the image."""
    rgb = np.asarray(rgb)
    m = np.round(rgb.reshape(-1, rgb.shape[-1]).mean(0)).astype(np.uint8)
    return np.broadcast_to(m, rgb.shape).copy()


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {a.shape} {a.dtype}")
    return np.ascontiguousarray(a)


def _pad(rgb: np.ndarray, mult: int) -> np.ndarray:
    h, w, _ = rgb.shape
    ph, pw = (-h) % mult, (-w) % mult
    if ph or pw:
        rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return np.ascontiguousarray(rgb)


# ----------------------------------------------------------------------------------------------
# Codec base
# ----------------------------------------------------------------------------------------------

class Codec:
    """A source codec: ``encode(rgb, param) -> bytes``, ``decode(bytes, shape) -> rgb``."""

    name: str = ""
    #: parameters from the lowest to the highest rate
    ladder: tuple = ()
    #: supports ``encode(rgb, LOSSLESS)`` with a bit-exact decode
    has_lossless: bool = False

    def encode(self, rgb: np.ndarray, param) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes, shape: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def settings(self) -> dict:
        """Everything besides (image, param) that changes the bitstream: part of the cache key."""
        return {}

    @property
    def tag(self) -> str:
        s = json.dumps({"name": self.name, **self.settings()}, sort_keys=True)
        return f"{self.name}-{hashlib.sha1(s.encode()).hexdigest()[:10]}"

    def param_label(self, param) -> str:
        return str(param)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings()})"


def _ffmpeg() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


_SWS = "lanczos+accurate_rnd+full_chroma_int+full_chroma_inp"
#: YCbCr -> RGB of every decode (the inverse of the encoders' BT.709 limited-range conversion)
_DECODE_SCALE_ARGS = "in_range=tv:in_color_matrix=bt709"


@functools.lru_cache(maxsize=None)
def _pyav_can_decode(fmt: str) -> bool:
    """Whether PyAV (a dependency) has the demuxer ``fmt`` and the filters the decode needs.

    The ffmpeg command costs a process start per frame (measured 65-88 ms for one 512x256 VVC
    frame against 30-40 ms in process); PyAV runs the same libavcodec decoder and the same
    swscale filter string, so the pixels are the same (bit-exact on the measured frames)."""
    try:
        import av
        import av.filter
    except ImportError:
        return False
    needed_filters = {"buffer", "scale", "format", "buffersink"}
    return fmt in av.formats_available and needed_filters <= set(av.filter.filters_available)


_GRAPHS = threading.local()   # per thread: a filter graph is not safe to share
_GRAPHS_KEPT = 8              # per thread, the most recently used


def _convert(frame, scale_args: str, pix_fmt: str):
    """``frame`` (a PyAV VideoFrame) through swscale (``scale_args`` with the flags ``_SWS``)
    to ``pix_fmt``: the ffmpeg command's conversion. The configured filter graph is kept per
    thread, size and format: building one cost ~5 ms of a ~15 ms live encode or decode."""
    import av.filter
    key = (frame.width, frame.height, frame.format.name, scale_args, pix_fmt)
    graphs = _GRAPHS.__dict__.setdefault("by_key", {})
    graph = graphs.pop(key, None)    # taken out while in use: a failure leaves no stale graph
    if graph is None:
        graph = av.filter.Graph()
        src = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                               time_base=fractions.Fraction(1, 25))
        scale = graph.add("scale", f"{scale_args}:flags={_SWS}")
        fmt = graph.add("format", pix_fmt)
        sink = graph.add("buffersink")
        src.link_to(scale)
        scale.link_to(fmt)
        fmt.link_to(sink)
        graph.configure()
    graph.push(frame)
    out = graph.pull()
    graphs[key] = graph
    while len(graphs) > _GRAPHS_KEPT:      # an offline sweep over many image sizes
        graphs.pop(next(iter(graphs)))
    return out


@functools.lru_cache(maxsize=None)
def _pyav_can_encode(encoder: str) -> bool:
    """Whether PyAV has the encoder ``encoder`` (e.g. ``libx265``) and the conversion filters."""
    try:
        import av
        import av.filter
    except ImportError:
        return False
    try:
        av.codec.Codec(encoder, "w")
    except (ValueError, av.FFmpegError):
        return False
    return {"buffer", "scale", "format", "buffersink"} <= set(av.filter.filters_available)


def _encode_in_process(name: str, encoder: str, pix_fmt: str, options: dict[str, str],
                       threads: int, rgb: np.ndarray) -> bytes:
    """One intra picture of ``rgb`` (H, W, 3) uint8 encoded by PyAV's ``encoder``: the same RGB
    -> BT.709 limited-range conversion (swscale, ``_SWS``) and encoder options as the ffmpeg
    command, with the colour range and matrix signalled as the command does, so the bitstream
    is the command's, byte for byte (tested), without a process start per frame (x265
    ultrafast at 512x256: ~33 ms of CPU through the command, ~16 ms in process)."""
    import av
    h, w, _ = rgb.shape
    try:
        frame = _convert(av.VideoFrame.from_ndarray(rgb, format="rgb24"),
                         "out_range=tv:out_color_matrix=bt709", pix_fmt)
        frame.pts = 0
        ctx = av.CodecContext.create(encoder, "w")
        ctx.width, ctx.height, ctx.pix_fmt = w, h, pix_fmt
        ctx.time_base = fractions.Fraction(1, 25)
        ctx.color_range, ctx.colorspace = frame.color_range, frame.colorspace
        ctx.thread_count = threads
        ctx.options = options
        packets = [*ctx.encode(frame), *ctx.encode(None)]
    except av.FFmpegError as e:
        raise RuntimeError(f"{name} encode failed: {e}") from e
    if not packets:
        raise RuntimeError(f"{name} encode failed: no packet")
    return b"".join(bytes(p) for p in packets)


def _decode_in_process(name: str, fmt: str, data: bytes, ph: int, pw: int) -> np.ndarray:
    """The first picture of raw stream ``data`` as (ph, pw, 3) uint8 RGB, decoded by PyAV."""
    import av
    try:
        with av.open(io.BytesIO(data), format=fmt) as container:
            stream = container.streams.video[0]
            stream.codec_context.options = {"err_detect": "explode"}
            frame = next(container.decode(stream), None)
        if frame is None:
            raise CodecError(f"{name} decode failed: no picture in {len(data)} B")
        out = _convert(frame, _DECODE_SCALE_ARGS, "rgb24").to_ndarray()
    except (av.FFmpegError, IndexError, StopIteration) as e:
        raise CodecError(f"{name} decode failed: {e}") from e
    if out.shape[:2] != (ph, pw):
        raise CodecError(f"{name} decoded {out.shape[:2]}, expected {(ph, pw)}")
    return out


class FfmpegCodec(Codec):
    """A video encoder of the ffmpeg in ``imageio-ffmpeg`` used for one intra frame."""

    fmt: str = ""            # raw stream muxer/demuxer (vvc, hevc, obu)
    pix_fmt: str = ""
    pad_to: int = 8

    def __init__(self, threads: int = 1, timeout: float = 900.0):
        self.threads = int(threads)
        self.timeout = float(timeout)

    #: PyAV's name of the encoder when lossy encodes can run in process (``encoder_options``)
    pyav_encoder: str = ""

    def encoder_args(self, param) -> list[str]:
        raise NotImplementedError

    def encoder_options(self, param) -> dict[str, str] | None:
        """The encoder's options as PyAV takes them where it runs in process, else None (the
        ffmpeg command runs it)."""
        return None

    def settings(self) -> dict:
        return {"threads": self.threads}     # vvenc/x265 output does not depend on it, but
                                             # keep caches of differently-run encoders apart

    def _run(self, cmd: list[str], data: bytes) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, input=data, capture_output=True, timeout=self.timeout)

    def encode(self, rgb: np.ndarray, param) -> bytes:
        rgb = _check_rgb(rgb)
        x = _pad(rgb, self.pad_to)
        options = self.encoder_options(param)
        if options is not None and _pyav_can_encode(self.pyav_encoder):
            return _encode_in_process(self.name, self.pyav_encoder, self.pix_fmt, options,
                                      self.threads, x)
        return self.encode_with_command(x, param)

    def encode_with_command(self, x: np.ndarray, param) -> bytes:
        """The ffmpeg command's encode of the padded picture ``x`` (where PyAV lacks the
        encoder, and for lossless coding)."""
        h, w, _ = x.shape
        lossless = param == LOSSLESS
        vf = [] if lossless else ["-sws_flags", _SWS, "-vf",
                                  "scale=out_range=tv:out_color_matrix=bt709"]
        cmd = [_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "-", *vf,
               *self.encoder_args(param), "-threads", str(self.threads),
               "-frames:v", "1", "-f", self.fmt, "-"]
        p = self._run(cmd, x.tobytes())
        if p.returncode != 0 or not p.stdout:
            raise RuntimeError(f"{self.name} encode failed: {p.stderr.decode(errors='replace')[-800:]}")
        return p.stdout

    def decode(self, data: bytes, shape: Sequence[int]) -> np.ndarray:
        h, w = int(shape[0]), int(shape[1])
        ph, pw = h + (-h) % self.pad_to, w + (-w) % self.pad_to
        if _pyav_can_decode(self.fmt):
            rgb = _decode_in_process(self.name, self.fmt, bytes(data), ph, pw)
        else:
            rgb = self.decode_with_command(data, ph, pw)
        return rgb[:h, :w].copy()

    def decode_with_command(self, data: bytes, ph: int, pw: int) -> np.ndarray:
        """The ffmpeg command's decode of the padded (ph, pw) picture (where PyAV lacks ``fmt``)."""
        cmd = [_ffmpeg(), "-hide_banner", "-loglevel", "error", "-xerror",
               "-err_detect", "explode", "-f", self.fmt, "-i", "-",
               "-sws_flags", _SWS, "-vf", f"scale={_DECODE_SCALE_ARGS}",
               "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        try:
            p = self._run(cmd, bytes(data))
        except subprocess.TimeoutExpired as e:
            raise CodecError(f"{self.name} decode timed out") from e
        if p.returncode != 0 or len(p.stdout) != ph * pw * 3:
            raise CodecError(f"{self.name} decode failed (rc {p.returncode}, {len(p.stdout)} B): "
                             f"{p.stderr.decode(errors='replace')[-300:]}")
        return np.frombuffer(p.stdout, np.uint8).reshape(ph, pw, 3)


class VVC(FfmpegCodec):
    name = "vvc"
    fmt = "vvc"
    pix_fmt = "yuv420p10le"
    ladder = tuple(range(51, 9, -1))            # QP, high QP = low rate first
    PRESETS = ("faster", "fast", "medium", "slow", "slower")

    def __init__(self, preset: str = "medium", threads: int = 1, timeout: float = 900.0):
        super().__init__(threads, timeout)
        if preset not in self.PRESETS:
            raise ValueError(f"vvc preset must be one of {self.PRESETS}")
        self.preset = preset

    def settings(self) -> dict:
        return {"preset": self.preset, "sws": _SWS, "range": "tv709", **super().settings()}

    def encoder_args(self, param) -> list[str]:
        return ["-c:v", "libvvenc", "-preset", self.preset, "-qp", str(int(param)), "-qpa", "0",
                "-pix_fmt", self.pix_fmt]


class HEVC(FfmpegCodec):
    name = "hevc"
    fmt = "hevc"
    pix_fmt = "yuv444p10le"
    ladder = tuple(range(51, 9, -1))
    has_lossless = True

    pyav_encoder = "libx265"

    def __init__(self, preset: str = "medium", threads: int = 1, timeout: float = 900.0,
                 thread_pool: bool = True):
        super().__init__(threads, timeout)
        self.preset = preset
        # x265 starts a worker pool per encoder whatever ``threads`` says; for one picture it
        # only waits on it: ultrafast at 512x256, in process, median 44 ms wall for 17 ms of
        # CPU (beside a busy core), and with one pool thread every encode took 300 ms wall.
        # ``thread_pool=False`` (the live chain) codes on the calling thread: 14.6 ms wall,
        # 14.5 ms CPU, and 0.2 % fewer bytes (no wavefront rows). It also encodes in process
        # (PyAV): no process start per frame. The offline tables stay on the ffmpeg command:
        # PyAV's x265 (4.2 in the wheel here) is not the command's (4.3); their bytes agreed
        # on every image tried, but the tables' cache must not hang on that.
        self.thread_pool = bool(thread_pool)

    def settings(self) -> dict:
        pool = {} if self.thread_pool else {"thread_pool": False}   # keeps older cache keys
        return {"preset": self.preset, "sws": _SWS, "range": "tv709", "pix": self.pix_fmt,
                **pool, **super().settings()}

    def encoder_args(self, param) -> list[str]:
        if param == LOSSLESS:      # RGB coded as GBR 4:4:4, x265 lossless: bit-exact
            return ["-c:v", "libx265", "-preset", self.preset,
                    "-x265-params", "lossless=1:info=0:log-level=error", "-pix_fmt", "gbrp"]
        options = self._x265_options(param)
        return ["-c:v", "libx265", *(a for k, v in options.items() for a in (f"-{k}", v)),
                "-pix_fmt", self.pix_fmt]

    def _x265_options(self, param) -> dict[str, str]:
        pool = "" if self.thread_pool else ":pools=none:frame-threads=1"
        return {"preset": self.preset, "tune": "psnr",
                "x265-params": f"qp={int(param)}:info=0:log-level=error{pool}"}

    def encoder_options(self, param) -> dict[str, str] | None:
        # lossless: the command's RGB -> GBR path; rare, not worth a second one
        return None if self.thread_pool or param == LOSSLESS else self._x265_options(param)

    def decode(self, data: bytes, shape: Sequence[int]) -> np.ndarray:
        return super().decode(data, shape)


class AV1Aom(FfmpegCodec):
    name = "av1-aom"
    fmt = "obu"
    pix_fmt = "yuv444p10le"
    ladder = tuple(range(63, 0, -1))            # crf

    def __init__(self, cpu_used: int = 4, threads: int = 1, timeout: float = 900.0):
        super().__init__(threads, timeout)
        self.cpu_used = int(cpu_used)

    def settings(self) -> dict:
        return {"cpu_used": self.cpu_used, "sws": _SWS, "range": "tv709", **super().settings()}

    def encoder_args(self, param) -> list[str]:
        return ["-c:v", "libaom-av1", "-usage", "allintra", "-cpu-used", str(self.cpu_used),
                "-crf", str(int(param)), "-b:v", "0", "-tune", "psnr", "-aq-mode", "0",
                "-still-picture", "1", "-pix_fmt", self.pix_fmt]


# ----------------------------------------------------------------------------------------------
# Pillow codecs
# ----------------------------------------------------------------------------------------------

class _PillowCodec(Codec):
    def _open(self, data: bytes, shape) -> np.ndarray:
        from PIL import Image
        try:
            with Image.open(io.BytesIO(bytes(data))) as im:
                im.load()
                a = np.asarray(im.convert("RGB"))
        except Exception as e:  # Pillow raises many types (OSError, SyntaxError, ValueError...)
            raise CodecError(f"{self.name} decode failed: {e}") from e
        if a.shape[:2] != tuple(shape[:2]):
            raise CodecError(f"{self.name} decoded {a.shape[:2]}, expected {tuple(shape[:2])}")
        return np.ascontiguousarray(a)

    def decode(self, data: bytes, shape: Sequence[int]) -> np.ndarray:
        return self._open(data, shape)


class AVIF(_PillowCodec):
    name = "av1"
    ladder = tuple(range(0, 101))               # quality

    def __init__(self, speed: int = 4, threads: int = 1):
        self.speed = int(speed)
        self.threads = int(threads)

    def settings(self) -> dict:
        from PIL import features
        return {"speed": self.speed, "subsampling": "4:4:4", "tune": "psnr",
                "libavif": features.version("avif")}

    def encode(self, rgb: np.ndarray, param) -> bytes:
        from PIL import Image
        b = io.BytesIO()
        Image.fromarray(_check_rgb(rgb)).save(
            b, format="AVIF", quality=int(param), subsampling="4:4:4", speed=self.speed,
            max_threads=self.threads, range="full", advanced={"tune": "psnr"})
        return b.getvalue()


class J2K(_PillowCodec):
    name = "j2k"
    #: compression ratios w.r.t. 24 bit/pixel, geometric from 0.05 to 8 bit/pixel
    ladder = tuple(float(round(24.0 / bpp, 3)) for bpp in np.geomspace(0.05, 8.0, 56))
    has_lossless = True

    def settings(self) -> dict:
        from PIL import features
        return {"mct": 1, "irreversible": True, "openjpeg": features.version("jpg_2000")}

    def encode(self, rgb: np.ndarray, param) -> bytes:
        from PIL import Image
        rgb = _check_rgb(rgb)
        res = max(1, min(6, int(math.log2(max(1, min(rgb.shape[:2])))) - 2))
        b = io.BytesIO()
        if param == LOSSLESS:
            Image.fromarray(rgb).save(b, format="JPEG2000", irreversible=False, mct=1,
                                      no_jp2=True, num_resolutions=res)
        else:
            Image.fromarray(rgb).save(b, format="JPEG2000", quality_mode="rates",
                                      quality_layers=[float(param)], irreversible=True, mct=1,
                                      no_jp2=True, num_resolutions=res)
        return b.getvalue()


class JPEG(_PillowCodec):
    name = "jpeg"
    ladder = tuple(range(1, 101))

    def settings(self) -> dict:
        return {"subsampling": "4:4:4", "optimize": True}

    def encode(self, rgb: np.ndarray, param) -> bytes:
        from PIL import Image
        b = io.BytesIO()
        Image.fromarray(_check_rgb(rgb)).save(b, format="JPEG", quality=int(param),
                                              subsampling=0, optimize=True)
        return b.getvalue()


_REGISTRY: dict[str, Callable[..., Codec]] = {
    "vvc": VVC, "hevc": HEVC, "av1": AVIF, "av1-aom": AV1Aom, "j2k": J2K, "jpeg": JPEG,
}
CODEC_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_codec(name: str, **options) -> Codec:
    """A codec by name (``vvc``, ``hevc``, ``av1``, ``av1-aom``, ``j2k``, ``jpeg``); options
    go to its constructor (e.g. ``get_codec("vvc", preset="faster")``)."""
    try:
        return _REGISTRY[name](**options)
    except KeyError:
        raise ValueError(f"unknown codec {name!r}; known: {', '.join(CODEC_NAMES)}") from None


# ----------------------------------------------------------------------------------------------
# Cache and RD helpers
# ----------------------------------------------------------------------------------------------

def image_key(rgb: np.ndarray) -> str:
    a = _check_rgb(rgb)
    h = hashlib.sha256()
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:20]


@dataclass
class CodecPoint:
    """One encoded operating point of one image."""
    codec: str
    param: object
    bits: int          #: exact bitstream size in bits (bytes x 8)
    mse: float         #: RGB MSE of the decoded image vs the original
    data: bytes | None = None

    @property
    def psnr(self) -> float:
        return float("inf") if self.mse == 0 else 10.0 * math.log10(255.0 ** 2 / self.mse)

    def bpp(self, shape) -> float:
        return self.bits / (shape[0] * shape[1])


def _default_cache_root() -> Path:
    env = os.environ.get("NTSCC_XR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ntscc-xr"


class BitstreamCache:
    """On-disk cache ``root/codecs/<codec tag>/<image key>/<param>.bin`` (+ ``.json`` with
    bits and MSE).  ``root=None``: ``$NTSCC_XR_CACHE`` or ``~/.cache/ntscc-xr``.
    ``enabled=False`` gives the same API without touching the disk."""

    def __init__(self, root: str | Path | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else _default_cache_root()
        self.enabled = enabled

    def _paths(self, codec: Codec, key: str, param) -> tuple[Path, Path]:
        d = self.root / "codecs" / codec.tag / key
        stem = codec.param_label(param).replace("/", "_")
        return d / f"{stem}.bin", d / f"{stem}.json"

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)               # atomic: parallel evaluations may share a cache

    def encode(self, codec: Codec, rgb: np.ndarray, param, key: str | None = None) -> bytes:
        if not self.enabled:
            return codec.encode(rgb, param)
        key = key or image_key(rgb)
        binp, _ = self._paths(codec, key, param)
        if binp.exists():
            return binp.read_bytes()
        data = codec.encode(rgb, param)
        self._write(binp, data)
        return data

    def point(self, codec: Codec, rgb: np.ndarray, param, key: str | None = None,
              with_data: bool = False) -> CodecPoint:
        """Encode (cached) + decode once to get the MSE (cached in the sidecar json)."""
        key = key or image_key(rgb)
        binp, jsp = self._paths(codec, key, param)
        if self.enabled and jsp.exists() and binp.exists():
            meta = json.loads(jsp.read_text())
            return CodecPoint(codec.name, param, int(meta["bits"]), float(meta["mse"]),
                              binp.read_bytes() if with_data else None)
        data = self.encode(codec, rgb, param, key)
        rec = codec.decode(data, rgb.shape)
        pt = CodecPoint(codec.name, param, 8 * len(data), mse(rgb, rec), data if with_data else None)
        if self.enabled:
            self._write(jsp, json.dumps({"bits": pt.bits, "mse": pt.mse, "param": param}).encode())
        return pt

    def bits(self, codec: Codec, rgb: np.ndarray, param, key: str | None = None) -> int:
        return 8 * len(self.encode(codec, rgb, param, key))


def rd_curve(codec: Codec, rgb: np.ndarray, params: Sequence | None = None,
             cache: BitstreamCache | None = None) -> list[CodecPoint]:
    """(bits, MSE) for each ladder parameter (cached)."""
    cache = cache or BitstreamCache()
    key = image_key(rgb)
    return [cache.point(codec, rgb, p, key) for p in (params or codec.ladder)]


def largest_fitting(codec: Codec, rgb: np.ndarray, max_bits: int,
                    cache: BitstreamCache | None = None, key: str | None = None,
                    with_data: bool = True, qp_hint=None) -> CodecPoint | None:
    """The highest-rate ladder point whose bitstream has at most ``max_bits`` bits.

    Binary search over the ladder (bits are monotone in QP up to rare one-byte wobbles, which
    the final neighbour scan absorbs); with ``qp_hint`` (e.g. the previous frame's QP in live
    use) a walk from the hint instead, usually 2-3 encodes.  None if nothing fits."""
    cache = cache or BitstreamCache()
    key = key or image_key(rgb)
    lad = list(codec.ladder)
    memo: dict[int, int] = {}

    def bits(i: int) -> int:
        if i not in memo:
            memo[i] = cache.bits(codec, rgb, lad[i], key)
        return memo[i]

    if max_bits < 0:
        return None
    if qp_hint is not None and qp_hint in lad:
        i = lad.index(qp_hint)
        if bits(i) <= max_bits:
            while i + 1 < len(lad) and bits(i + 1) <= max_bits:
                i += 1
        else:
            while i > 0 and bits(i) > max_bits:
                i -= 1
            if bits(i) > max_bits:
                return None
        return cache.point(codec, rgb, lad[i], key, with_data=with_data)
    if bits(0) > max_bits:
        return None
    lo, hi = 0, len(lad)          # lad[lo] fits; hi: first index known not to (or the end)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bits(mid) <= max_bits:
            lo = mid
        else:
            hi = mid
    while lo + 1 < len(lad) and bits(lo + 1) <= max_bits:   # non-monotone neighbour
        lo += 1
    return cache.point(codec, rgb, lad[lo], key, with_data=with_data)


def prefill(codec: Codec, images: Sequence[np.ndarray], params: Sequence | None = None,
            cache: BitstreamCache | None = None, workers: int = 2,
            with_mse: bool = True) -> int:
    """Encode (and decode, for the MSE) ``params`` (default: the whole ladder) of every image
    into the cache, ``workers`` encodes at a time (the ffmpeg codecs run as subprocesses, so
    threads suffice).  Returns the number of points now cached.  Run once before an
    evaluation with slow presets (vvenc ``medium``/``slower``)."""
    from concurrent.futures import ThreadPoolExecutor
    cache = cache or BitstreamCache()
    jobs = [(rgb, image_key(rgb), p) for rgb in images for p in (params or codec.ladder)]

    def one(job):
        rgb, key, p = job
        if with_mse:
            cache.point(codec, rgb, p, key)
        else:
            cache.encode(codec, rgb, p, key)
        return 1

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as ex:
        return sum(ex.map(one, jobs))
