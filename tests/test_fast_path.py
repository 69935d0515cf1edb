"""The learned codec's inference fast path (core/codec/fast.py) against the float32 path on the
shipped checkpoint. bf16 is forced on so that it is tested on any CPU (emulated, slower, the
same numbers as native bf16 up to accumulation order)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from core.codec.fast import Autocast, OnnxAnalysis, SubPixelUp, native_bf16, prepare_fast
from core.codec.learned import LearnedCodec
from core.codec.model import pad_to_multiple
from core.machine import cpu_description, cpu_flags, cpu_model
from core.media.imageio import read_rgb
from core.media.metrics import psnr
from tests.helpers import REPO

KODIM05_CROP = REPO / "tests" / "fixtures" / "kodak" / "kodim05_crop.png"
#: Stated tolerances. Measured on the step-24400 checkpoint (kodim05 crop / kodim20): PSNR
#: +0.02 / +0.09 dB (2 noise seeds; the rate maps differ at a few positions, so the channel
#: noise lands differently); latent 0.5 % / 0.4 % relative L2; decoded pixels from the same
#: symbols: mean |Δ| 0.21 / 0.19, max 2 (of 255); symbol count -0.2 % / +0.2 %.
PSNR_TOLERANCE_DB = 0.1
LATENT_REL_TOLERANCE = 0.02
PIXEL_MEAN_ABS_TOLERANCE = 1.0
PIXEL_MAX_ABS_TOLERANCE = 8


@pytest.fixture(scope="module")
def codecs():
    ref = LearnedCodec(device="cpu")
    fast = LearnedCodec(model=ref.model, device="cpu", fast=True, bf16=True)
    return ref, fast


@pytest.fixture(scope="module")
def image():
    return read_rgb(KODIM05_CROP)


def test_fast_path_psnr_within_tolerance_awgn_10db(codecs, image):
    ref, fast = codecs
    p_ref = [psnr(image, ref.transmit_awgn(image, 0.18, 0.2, 10.0, np.random.default_rng(s))[0]) for s in (0, 1)]
    p_fast = [psnr(image, fast.transmit_awgn(image, 0.18, 0.2, 10.0, np.random.default_rng(s))[0]) for s in (0, 1)]
    assert abs(np.mean(p_fast) - np.mean(p_ref)) <= PSNR_TOLERANCE_DB, (p_ref, p_fast)


def test_fast_path_outputs_match(codecs, image):
    ref, fast = codecs
    x = pad_to_multiple(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    lam = torch.tensor([0.18])
    with torch.no_grad():
        y_ref, _ = ref.model.analysis(x, lam)
        y_fast, _ = fast.fast.analysis(x, lam)
    assert y_fast.dtype == torch.float32
    assert float((y_fast - y_ref).norm() / y_ref.norm()) <= LATENT_REL_TOLERANCE
    # the same received symbols and side information through both decoders
    enc = ref.encode(image, 0.18, 0.2, 10.0)
    rec_ref = ref.decode(enc.symbols, enc.side).astype(np.float32)
    rec_fast = fast.decode(enc.symbols, enc.side).astype(np.float32)
    assert np.abs(rec_fast - rec_ref).mean() <= PIXEL_MEAN_ABS_TOLERANCE
    assert np.abs(rec_fast - rec_ref).max() <= PIXEL_MAX_ABS_TOLERANCE
    # the fast encoder's rate map differs from float32 only at a few quantiser boundaries
    enc_fast = fast.encode(image, 0.18, 0.2, 10.0)
    assert abs(enc_fast.n_symbols - enc.n_symbols) <= 0.02 * enc.n_symbols


def test_fast_path_keeps_float32_model_and_entropy():
    model = LearnedCodec(device="cpu").model
    fast, opts = prepare_fast(model, "cpu", bf16=True)
    assert opts.bf16 and fast is not model
    assert isinstance(fast.g_a, Autocast) and isinstance(fast.jscc.enc_a, Autocast)
    assert not isinstance(fast.entropy, Autocast)  # likelihoods and the rate map stay float32
    assert not isinstance(model.g_a, Autocast)  # the training / editing model is untouched
    same, opts = prepare_fast(model, "cpu", bf16=False, onnx=False, subpixel=False)
    assert same is model and not opts.bf16
    assert isinstance(native_bf16(torch.device("cpu")), bool)


def test_native_bf16_and_the_report_line_follow_this_cpus_flags():
    """The fast path's bf16 choice and the CPU line every speed report carries read the same
    /proc/cpuinfo flags (the project machine is an Intel Xeon without bf16 on some days, an AMD
    EPYC with avx512_bf16 on others)."""
    flags = cpu_flags()
    assert native_bf16(torch.device("cpu")) == bool({"avx512_bf16", "amx_bf16"} & flags)
    line = cpu_description()
    assert line.startswith(cpu_model()) and f"{os.cpu_count()} cores" in line
    assert ("avx512_bf16" in line) == ("avx512_bf16" in flags)


@pytest.fixture(scope="module")
def pair():
    """The float32 codec and the CPU fast path without bf16 (g_a on ONNX Runtime)."""
    ref = LearnedCodec(device="cpu")
    return ref, LearnedCodec(model=ref.model, device="cpu", fast=True, bf16=False)


class TestOnnxRuntimeAnalysis:
    """g_a exported from the loaded weights and run by ONNX Runtime (the CPU fast path where bf16
    is not native): the same float32 latent, any image size, the rest of the model untouched."""

    def test_runs_g_a_on_onnx_runtime_and_leaves_the_rest(self, pair):
        ref, fast = pair
        assert fast.fast_options.onnx_g_a and "ONNX Runtime" in fast.fast_options.describe()
        assert isinstance(fast.fast.g_a, OnnxAnalysis)
        fast.fast.g_a(torch.zeros(1, 3, 32, 32))  # exported at the first call
        assert fast.fast.g_a.session is not None
        assert not isinstance(ref.model.g_a, OnnxAnalysis)  # training / NTSCC++ editing model
        assert fast.fast.g_s is not ref.model.g_s and not isinstance(fast.fast.g_s, OnnxAnalysis)

    @pytest.mark.parametrize("shape", [(1, 3, 64, 128), (2, 3, 96, 64)])
    def test_latent_matches_pytorch_at_any_size(self, pair, shape):
        ref, fast = pair
        x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            y_ref, y_fast = ref.model.g_a(x), fast.fast.g_a(x)
        assert y_fast.shape == y_ref.shape and y_fast.dtype == torch.float32
        assert float((y_fast - y_ref).norm() / y_ref.norm()) < 1e-5

    def test_same_picture_over_the_same_channel(self, pair, image):
        ref, fast = pair
        rec_ref, enc_ref = ref.transmit_awgn(image, 0.18, 0.2, 10.0, np.random.default_rng(0))
        rec_fast, enc_fast = fast.transmit_awgn(image, 0.18, 0.2, 10.0, np.random.default_rng(0))
        assert abs(enc_fast.n_symbols - enc_ref.n_symbols) <= 0.005 * enc_ref.n_symbols
        assert abs(psnr(image, rec_fast) - psnr(image, rec_ref)) <= PSNR_TOLERANCE_DB

    def test_falls_back_to_pytorch_when_the_export_fails(self, caplog):
        class RefusesBlankInput(torch.nn.Module):  # the export traces a blank image: it fails
            def forward(self, x):
                if float(x.abs().sum()) == 0:
                    raise RuntimeError("blank image")
                return x * 2
        g_a = OnnxAnalysis(RefusesBlankInput(), threads=1)
        x = torch.ones(1, 3, 16, 16)
        assert torch.equal(g_a(x), x * 2) and g_a.failed and g_a.session is None
        assert "stays in PyTorch" in caplog.text


class TestSubPixelUp:
    """g_s's last up-convolution rewritten as convolution + pixel shuffle: the same function."""

    @pytest.mark.parametrize("k, c_in, c_out, hw", [(5, 8, 3, (5, 7)), (3, 4, 2, (4, 4)), (7, 6, 5, (3, 9))])
    def test_equals_the_transposed_convolution(self, k, c_in, c_out, hw):
        torch.manual_seed(k)
        up = torch.nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=k // 2, output_padding=1)
        x = torch.randn(2, c_in, *hw)
        with torch.no_grad():
            want, got = up(x), SubPixelUp(up)(x)
        assert got.shape == want.shape == (2, c_out, 2 * hw[0], 2 * hw[1])
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)

    def test_refuses_an_up_convolution_it_cannot_rewrite(self):
        with pytest.raises(ValueError, match="stride-2"):
            SubPixelUp(torch.nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1))

    def test_shipped_synthesis_is_unchanged(self, image):
        model = LearnedCodec(device="cpu").model
        fast, opts = prepare_fast(model, "cpu", bf16=False, onnx=False, subpixel=True)
        assert opts.subpixel_g_s and isinstance(fast.g_s.net[-1], SubPixelUp)
        assert isinstance(model.g_s.net[-1], torch.nn.ConvTranspose2d)  # the training model is untouched
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255)
        with torch.no_grad():
            y = model.g_a(pad_to_multiple(x))
            want, got = model.g_s(y), fast.g_s(y)
        assert (got - want).abs().max() < 1e-4
