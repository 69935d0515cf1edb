"""Evaluation helpers and a small end-to-end ROI evaluation on an in-repo panorama."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main as cli_main
from core.codec.provenance import weights_identity
from core.experiments.evaluate import equal_quality_savings, pareto_front


def test_pareto_front_drops_dominated_points():
    pts = [[0.04, 22.0], [0.02, 21.0], [0.05, 21.5], [0.08, 24.0]]
    assert pareto_front(pts) == [[0.02, 21.0], [0.04, 22.0], [0.08, 24.0]]


def test_equal_quality_savings_interpolated_and_matched():
    anchor = [[0.02, 20.0], [0.04, 22.0], [0.08, 24.0]]
    test = [[0.01, 22.0], [0.03, 23.9], [0.01, 30.0]]
    out = equal_quality_savings(anchor, test, tolerance_db=0.3)
    interp = {r["psnr"]: r["saving_pct"] for r in out["saving_interpolated"]}
    assert interp[22.0] == pytest.approx(75.0)
    assert interp[23.9] == pytest.approx(100 * (1 - 0.03 / 0.078), abs=0.1)
    assert 30.0 not in interp  # outside the anchor's PSNR range: no claim
    matched = {r["psnr"]: r for r in out["saving_matched"]}
    assert matched[23.9]["cbr_anchor"] == 0.08 and matched[23.9]["saving_pct"] == 62.5
    assert set(matched) == {22.0, 23.9}


def test_eval_roi_runs_on_a_repo_panorama(tmp_path):
    """The ROI evaluation end to end on the shipped model: the ROI stream spends fewer symbols
    than the uniform one at the same η scale and still renders a sane viewport."""
    folder = tmp_path / "erp"
    folder.mkdir()
    src = Path(__file__).parent / "fixtures" / "baseline_erp_petra_128x64.png"
    (folder / src.name).write_bytes(src.read_bytes())
    out = tmp_path / "roi.json"
    rc = cli_main(["eval", "roi", "--dataset", str(folder), "--resolution", "256x128",
                   "--lambdas", "0.18", "--scales", "0.2", "--yaws", "0", "--json", str(out),
                   "--device", "cpu", "--edit-steps", "2"])
    assert rc == 0
    res = json.loads(out.read_text())
    (c_u, p_u), = res["points_lambda_scale"]["uniform"].values()
    (c_r, p_r), = res["points_lambda_scale"]["roi"].values()
    (c_e, p_e), = res["points_lambda_scale"]["roi+edit T=2"].values()  # eq. 20 beside the η map alone
    assert c_r < 0.8 * c_u and c_e < 0.8 * c_u
    assert p_u > 15 and p_r > 15 and p_e > 15
    assert set(res["bd_rate_vs_uniform_pct"]) == {"roi", "roi+edit T=2"}


def test_eval_snr_reports_a_fixed_nu_encoder_beside_the_matched_one(tmp_path):
    """``eval snr`` by default also runs the encoder told ν = 10 dB whatever the channel; at a
    10 dB channel the two coincide, and the decoder's SNR is the estimate (stated)."""
    folder = tmp_path / "img"
    folder.mkdir()
    src = Path(__file__).parent / "fixtures" / "kodak" / "kodim05_crop.png"
    (folder / src.name).write_bytes(src.read_bytes())
    out = tmp_path / "snr.json"
    rc = cli_main(["eval", "snr", "--dataset", str(folder), "--snrs", "4,10", "--cbr", "0.2",
                   "--schemes", "compatible", "--lambdas", "0.18", "--etas", "0.2",
                   "--json", str(out), "--plot", str(tmp_path / "snr.png"), "--device", "cpu"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["learned_rx_snr"] == "estimated"
    matched, fixed = res["curves"]["compatible"], res["curves"]["compatible ν=10dB"]
    assert [s for s, _ in matched] == [s for s, _ in fixed] == [4.0, 10.0]
    assert abs(matched[1][1] - fixed[1][1]) < 1e-9     # ν = SNR = 10 dB: the same encoding
    assert all(p > 15 for _, p in matched + fixed)
    # one (λ, η) point per SNR: a front of one point, interpolated only at its own CBR
    assert set(res["curves_interpolated"]) == {"compatible", "compatible ν=10dB"}
    assert res["nu_gain_db"]["compatible"][1] == [10.0, 0.0]
    assert res["model"] == weights_identity()  # made with the shipped checkpoint, and says so
    assert (tmp_path / "snr.png").stat().st_size > 0


def test_classical_rd_points_sit_at_the_channel_uses_spent():
    """``eval rd`` places a classical point at the symbols the transport block took plus the
    grant, averaged over the images -- not at the nominal budget."""
    import numpy as np
    from PIL import Image

    from core.classical.chain import grant_channel_uses
    from core.experiments.evaluate import classical_curve
    rgb = np.asarray(Image.open(Path(__file__).parent / "fixtures" / "baseline_erp_petra_128x64.png")
                     .convert("RGB"))
    images = [("a", rgb), ("b", rgb[:, ::-1].copy())]
    curve, per_image = classical_curve("jpeg+ldpc", images, [0.15, 0.3], 10.0, seed=0, trials=1)
    grant = grant_channel_uses(10.0) / (3 * 64 * 128)
    assert grant > 0
    for (spent, _), budget, k in zip(curve, (0.15, 0.3), range(2)):
        per = [per_image[n][k][0] for n in ("a", "b")]
        assert spent == pytest.approx(np.mean(per), abs=1e-5)
        assert all(c >= grant for c in per)
        assert spent != budget and spent <= budget + grant + 1e-9


def test_rd_states_the_vvenc_preset_of_each_vvc_curve():
    """The RD tables encode VVC with ``medium`` (the live chain: ``faster``); a curve reused from
    an older result keeps the preset it was made with, and the markdown table says which."""
    from core.experiments.evaluate import RD_VVC_PRESET, make_classical, markdown_table, vvc_presets
    assert RD_VVC_PRESET == "medium"
    assert make_classical("vvc+ldpc", "medium").codec.preset == "medium"
    reused = {"curves": {"vvc+capacity": [[0.02, 30.0]]}}
    presets = vvc_presets(["vvc+ldpc", "vvc+capacity", "jpeg+ldpc"], reused, "medium")
    assert presets == {"vvc+ldpc": "medium", "vvc+capacity": "faster"}
    table = markdown_table({"snr_db": 10.0, "dataset": "kodak", "n_images": 1, "anchor": "vvc+ldpc",
                            "curves": {"vvc+ldpc": [[0.02, 30.0], [0.08, 35.0]]}, "bd_rate": {},
                            "vvc_preset": presets})
    assert "vvc+ldpc `medium`" in table and "vvc+capacity `faster`" in table


def test_rd_reuse_keeps_the_msssim_curve_and_preset_of_a_reused_scheme(tmp_path):
    """``eval rd --reuse``: a scheme taken from an earlier result keeps its PSNR and MS-SSIM
    curves and the vvenc preset it was made with (nothing is recomputed)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    src = Path(__file__).parent / "fixtures" / "baseline_erp_petra_128x64.png"
    (folder / src.name).write_bytes(src.read_bytes())
    earlier = {"snr_db": 10.0, "n_images": 1, "vvc_preset": {"vvc+ldpc": "medium"},
               "curves": {"vvc+ldpc": [[0.01, 27.0], [0.02, 29.0], [0.04, 31.0], [0.08, 34.0]]},
               "curves_msssim_db": {"vvc+ldpc": [[0.01, 11.0], [0.02, 12.5], [0.04, 14.0], [0.08, 16.0]]}}
    reuse = tmp_path / "earlier.json"
    reuse.write_text(json.dumps(earlier))
    out = tmp_path / "rd.json"
    rc = cli_main(["eval", "rd", "--dataset", str(folder), "--schemes", "vvc+ldpc", "--reuse", str(reuse),
                   "--json", str(out), "--table", str(tmp_path / "rd.md")])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["curves"]["vvc+ldpc"] == earlier["curves"]["vvc+ldpc"]
    assert res["curves_msssim_db"]["vvc+ldpc"] == earlier["curves_msssim_db"]["vvc+ldpc"]
    assert res["vvc_preset"] == {"vvc+ldpc": "medium"}
    assert "vvc+ldpc `medium`" in (tmp_path / "rd.md").read_text()


def test_rd_reuse_merges_several_results_and_derives_ntsccp_from_a_reused_sweep(tmp_path):
    """``eval rd --reuse a.json,b.json``: each scheme from the first result that has it, the
    side-part counters of the results used summed, and ntscc+ made from the reused compatible
    sweep's λ0 points exactly as a fresh run makes it (nothing is recomputed: no model runs)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    src = Path(__file__).parent / "fixtures" / "baseline_erp_petra_128x64.png"
    (folder / src.name).write_bytes(src.read_bytes())
    keys = ["0.013,0.1", "0.18,0.1", "0.18,0.2", "0.72,0.2"]
    per = [[0.008, 24.0, 0.95], [0.010, 25.0, 0.96], [0.020, 26.5, 0.97], [0.030, 27.0, 0.975]]
    learned = {"snr_db": 10.0, "n_images": 1,
               "side_info": {"learned_frames": 40, "side_failed": 1, "classical_grants": 0, "grant_failed": 0},
               "curves": {"compatible": [[0.008, 24.0], [0.01, 25.0], [0.02, 26.5], [0.03, 27.0]]},
               "points": {"compatible": {k: p[:2] for k, p in zip(keys, per)}},
               "per_image": {"compatible": {src.name: per}},
               "model": {"weights": "w.safetensors", "sha256": "0123456789abcdef", "step": 7, "config": "small"}}
    classical = {"snr_db": 10.0, "n_images": 1, "vvc_preset": {"vvc+ldpc": "medium"},
                 "side_info": {"learned_frames": 0, "side_failed": 0, "classical_grants": 8, "grant_failed": 0},
                 "curves": {"vvc+ldpc": [[0.01, 27.0], [0.02, 29.0], [0.04, 31.0]],
                            "compatible": [[0.5, 1.0]]}}
    paths = [tmp_path / "learned.json", tmp_path / "classical.json"]
    for path, d in zip(paths, (learned, classical)):
        path.write_text(json.dumps(d))
    out = tmp_path / "rd.json"
    rc = cli_main(["eval", "rd", "--dataset", str(folder), "--schemes", "compatible,ntscc+,vvc+ldpc",
                   "--reuse", ",".join(map(str, paths)), "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["curves"]["compatible"] == learned["curves"]["compatible"]  # the first result wins
    assert res["curves"]["vvc+ldpc"] == classical["curves"]["vvc+ldpc"]
    assert res["points"]["ntscc+"] == {"0.18,0.1": [0.010, 25.0], "0.18,0.2": [0.020, 26.5]}
    assert res["curves"]["ntscc+"] == [[0.01, 25.0], [0.02, 26.5]]
    assert res["per_image"]["ntscc+"] == {src.name: per[1:3]}
    assert res["side_info"]["learned_frames"] == 40 and res["side_info"]["classical_grants"] == 8
    assert res["model"] == learned["model"]  # the learned curves' model travels with them
    assert res["vvc_preset"] == {"vvc+ldpc": "medium"}


def test_sweep_runs_g_a_once_per_image_with_the_same_results():
    """``learned_points`` remembers ẏ = g_a(x) per image across the (λ, η) grid: g_a runs once
    per image, and every point is what a plain ``transmit_awgn`` gives with the same draws."""
    import numpy as np

    from core.codec.learned import LearnedCodec
    from core.experiments.evaluate import learned_points
    from core.media.imageio import read_rgb
    from core.media.metrics import psnr

    codec = LearnedCodec(device="cpu")
    fixtures = Path(__file__).parent / "fixtures" / "kodak"
    images = [(p.name, read_rgb(p)) for p in sorted(fixtures.glob("*.png"))[:2]]
    calls = []
    hook = codec.model.g_a.register_forward_hook(lambda *_: calls.append(1))
    try:
        points = learned_points(codec, images, "compatible", [0.0483, 0.72], [0.1, 0.3], 10.0, seed=3,
                                progress=False)
    finally:
        hook.remove()
    assert len(calls) == len(images)  # 4 points x 2 images, g_a twice
    assert codec.model.g_a.__class__.__name__ == "AnalysisTransform"  # put back afterwards
    for (lam, eta), res in points.items():
        rng = np.random.default_rng(3)
        for name, rgb in images:
            rec, enc = codec.transmit_awgn(rgb, lam, eta, 10.0, rng)
            assert res[name] == [enc.cbr, psnr(rgb, rec)]


def test_eval_fading_runs_both_chains_over_a_trace_and_states_the_vvc_preset(tmp_path):
    """``eval fading`` end to end on the shipped model and the real VVC + LDPC chain: a frame
    encoded for a 12 dB CQI that meets a 3 dB channel breaks the classical chain (the cliff), and
    the result states the vvenc preset it ran."""
    folder = tmp_path / "erp"
    folder.mkdir()
    src = Path(__file__).parent / "fixtures" / "baseline_erp_petra_128x64.png"
    (folder / src.name).write_bytes(src.read_bytes())
    trace = tmp_path / "trace.csv"
    trace.write_text("snr_db\n12\n12\n3\n")
    out = tmp_path / "fading.json"
    rc = cli_main(["eval", "fading", "--dataset", str(folder), "--resolution", "128x64",
                   "--trace", str(trace), "--frames", "3", "--cbr", "0.1", "--json", str(out),
                   "--device", "cpu"])
    assert rc == 0
    res = json.loads(out.read_text())
    rows = res["per_frame"]
    assert [r["snr_db"] for r in rows] == [12.0, 12.0, 3.0] and [r["cqi_db"] for r in rows] == [12.0, 12.0, 12.0]
    assert res["vvc_preset"] == "faster" and res["rx_snr"] == "estimated"
    assert rows[2]["classical_ok"] is False        # MCS chosen for 12 dB, 9 dB short: the cliff
    assert res["classical_failures"] == sum(not r["classical_ok"] for r in rows)
    assert all(r["learned_psnr"] > 15 for r in rows[:2])
    assert res["model"] == weights_identity()
