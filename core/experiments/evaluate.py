"""``ntscc-xr eval``: rate-distortion, SNR sweep and fading comparisons (paper Sec. VI, App. A).

Schemes
-------
compatible     the shipped compatible NTSCC+ model, swept over SQI λ ∈ Λ and η (one model)
ntscc+         the same model held at its fixed training point λ0 (SQI fixed), η swept
<codec>+ldpc   classical chain: codec + 5G NR LDPC + QAM (Appendix-A policy: per image the
               largest source rate within the CBR budget, MCS chosen for the best average)
<codec>+capacity  the codec behind a capacity-achieving channel code

The channel is complex AWGN at the stated SNR (the equivalent of the OFDM link with ideal
equalisation); ``ntscc-xr link-test`` measures the real flowgraph separately.

Side information is on the air in every evaluation (:mod:`core.link.sidepart`): the learned
chain's side part (control block + LDPC-coded side bytes, MCS from the CQI with a 3 dB margin)
is encoded, passed through the same channel and decoded with the JSCC symbols, and counted in
its CBR; a frame whose side part fails its CRC shows the fallback (mid-grey for a single image,
the previous frame in ``fading``) and is counted (``side_failed``). The classical chain's
grant is counted the same way (its channel uses come off the budget and are added to the
reported CBR) and sent once per image and budget through the same channel: a lost grant shows
mid-grey and is counted (``grant_failed``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from core.media.imageio import list_images, read_rgb
from core.media.metrics import ms_ssim, ms_ssim_db, psnr
from core.paths import REPO_ROOT, asset

log = logging.getLogger(__name__)
#: side-part outcomes of the learned chain in this run (reported in every result)
SIDE_STATS = {"frames": 0, "side_failed": 0}
#: classical grants sent / lost in this run
GRANT_STATS = {"frames": 0, "grant_failed": 0}


def _count_side(enc) -> None:
    SIDE_STATS["frames"] += 1
    SIDE_STATS["side_failed"] += int(enc.side_ok is False)


def side_report(reused: dict | None = None) -> dict:
    """Counts of side parts / grants lost in this run, for the result JSON (plus those of the
    ``reused`` run's ``side_info``, whose curves this run takes over)."""
    info = {"learned_frames": SIDE_STATS["frames"], "side_failed": SIDE_STATS["side_failed"],
            "classical_grants": GRANT_STATS["frames"], "grant_failed": GRANT_STATS["grant_failed"]}
    for key in info:
        info[key] += int((reused or {}).get(key, 0))
    return {"side_info": {**info, "rule": "sidepart: MCS-0 control + side bytes at MCS(CQI - 3 dB, 1 % BLER)"}}

DEFAULT_KODAK = REPO_ROOT.parent / "shared" / "data" / "kodak"
LEARNED = ("compatible", "ntscc+")
#: The η sweep; a model is evaluated on the points inside the η range it was trained on.
ETA_GRID = (0.05, 0.08, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
ETAS_HELP = (f"comma-separated η values (default: those of {','.join(map(str, ETA_GRID))} inside the η "
             "range the model was trained on, its config's eta_range)")
DEFAULT_CBRS = (0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="eval_kind", metavar="KIND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dataset", default=str(DEFAULT_KODAK), help="folder of test images (default: Kodak)")
    common.add_argument("--limit", type=int, default=0, help="use only the first N images (0 = all)")
    common.add_argument("--weights", default=None, help="model weights (default: the shipped checkpoint)")
    common.add_argument("--device", default="auto")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--json", default=None, help="write the result JSON here (also printed)")
    common.add_argument("--plot", default=None, help="write a PNG plot here")
    common.add_argument("--lambdas", default=None,
                        help="SQI λ values for the compatible model (default: the model's grid Λ)")
    common.add_argument("--rx-snr", choices=["estimated", "true"], default="estimated",
                        help="SNR the learned decoder is given: the receiver's pilot-based estimate "
                             "(as the live PHY forms it; default) or the true channel SNR")
    common.add_argument("--schemes", default="ntscc+,compatible",
                        help="comma-separated: ntscc+, compatible, vvc+ldpc, hevc+ldpc, av1+ldpc, "
                             "j2k+ldpc, jpeg+ldpc, <codec>+capacity")
    rd = sub.add_parser("rd", parents=[common], help="rate-distortion curves and BD-rate at one SNR")
    rd.add_argument("--channel", default="awgn", choices=["awgn"])
    rd.add_argument("--snr", type=float, default=10.0)
    rd.add_argument("--etas", default=None, help=ETAS_HELP)
    rd.add_argument("--cbrs", default=",".join(map(str, DEFAULT_CBRS)), help="CBR budgets for classical schemes")
    rd.add_argument("--anchor", default="vvc+ldpc")
    rd.add_argument("--table", default=None, help="write a markdown table here")
    rd.add_argument("--msssim", action=argparse.BooleanOptionalAction, default=True,
                    help="also MS-SSIM (curves in dB, -10·log10(1 - MS-SSIM), and BD-rate) for every "
                         "scheme; the plot gets a second file <plot>_msssim.png")
    rd.add_argument("--vvc-preset", default=RD_VVC_PRESET, choices=VVC_PRESETS,
                    help="vvenc preset of the VVC schemes (the live chain keeps 'faster'; stated in the result)")
    rd.add_argument("--reuse", default=None,
                    help="previous rd JSONs, comma-separated (same dataset and SNR): a scheme found in "
                         "one is taken from the first that has it, not recomputed; ntscc+ comes from a "
                         "reused compatible sweep (its λ0 subset); side-part counters are summed")
    sn = sub.add_parser("snr", parents=[common], help="PSNR against SNR at a fixed CBR (paper Fig. 7c)")
    sn.add_argument("--cbr", type=float, default=0.04)
    sn.add_argument("--snrs", default="0,2,4,6,8,10,12,14")
    sn.add_argument("--etas", default=None, help=ETAS_HELP)
    sn.add_argument("--fixed-nu", default="10",
                    help="also the learned chain with its encoder told this ν (dB) whatever the "
                         "channel (the decoder still gets the estimated SNR), beside the encoder "
                         "told the channel SNR; 'off' to skip")
    roi = sub.add_parser("roi", parents=[common],
                         help="viewport ROI vs uniform transmission on 360° panoramas (paper Fig. 8)")
    roi.add_argument("--snr", type=float, default=10.0)
    roi.add_argument("--resolution", default="1024x512")
    roi.add_argument("--yaws", default="0,90,180,270", help="viewport yaws per panorama (deg)")
    roi.add_argument("--scales", default="0.1,0.2,0.3,0.4",
                     help="η scales: uniform η = s; ROI η = s/0.2 · (0.25 in, 0.05 out); "
                          "every scale is run at every λ of --lambdas and the fronts compared")
    roi.add_argument("--edit-steps", type=int, default=0, help="NTSCC++ ROI editing steps (eq. 20)")
    fa = sub.add_parser("fading", parents=[common], help="per-frame PSNR over a time-varying SNR trace (paper Fig. 9)")
    fa.add_argument("--trace", default=str(REPO_ROOT / "flowgraphs" / "traces" / "cost2100_like.csv"))
    fa.add_argument("--cbr", type=float, default=0.04)
    fa.add_argument("--frames", type=int, default=120)
    fa.add_argument("--video", default=str(asset("data", "video", "vrview_richoh1_0_3.mp4")),
                    help="content (ERP video); --dataset is used instead when given explicitly")
    fa.add_argument("--resolution", default="512x256")
    fa.add_argument("--classical", default="vvc+ldpc", help="classical scheme (CQI-driven MCS/QP)")
    fa.add_argument("--vvc-preset", default=CLASSICAL_VVC_PRESET, choices=VVC_PRESETS,
                    help="vvenc preset of a VVC classical chain (default: the live chain's 'faster', "
                         "since this emulates streaming; 'medium' is the RD tables' stronger anchor, "
                         "~10x the encode time; stated in the result)")
    fa.add_argument("--feedback-delay", type=int, default=1, help="frames between a CQI report and its use")
    fa.add_argument("--lam", type=float, default=0.72, help="SQI λ of the learned chain")
    fa.add_argument("--olla", action=argparse.BooleanOptionalAction, default=True,
                    help="outer-loop link adaptation (ACK-driven CQI back-off) for the classical chain")
    fa.add_argument("--bler-target", type=float, default=0.01,
                    help="frame error rate the classical link adaptation aims at (no HARQ; the live default)")
    ed = sub.add_parser("edit", parents=[common], help="NTSCC++ online editing: T steps vs T = 0 (BD-rate gain)")
    ed.add_argument("--snr", type=float, default=10.0)
    ed.add_argument("--steps", type=int, default=20)
    ed.add_argument("--etas", default="0.2",
                    help="η values; every η is run at every λ of --lambdas and the fronts compared")
    ed.add_argument("--msssim-weight", type=float, default=0.0,
                    help="κ of the multi-distortion objective (eq. 21): the edited frames minimise "
                         "R + λ·(MSE + κ·(1 - MS-SSIM)); 0 = eq. 19. Both fronts are also reported in "
                         "MS-SSIM with its BD-rate against T = 0")


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def model_etas(cfg, etas: str | None = None) -> list[float]:
    """The η values to sweep: ``etas`` when given, else the points of :data:`ETA_GRID` inside
    the model's trained range ``cfg.eta_range`` (its ends included)."""
    if etas:
        return _floats(etas)
    lo, hi = cfg.eta_range
    inside = [e for e in ETA_GRID if lo - 1e-9 <= e <= hi + 1e-9]
    return sorted(set(inside) | {lo, hi})


def load_images(folder: str, limit: int) -> list[tuple[str, np.ndarray]]:
    files = list_images(folder)
    files = files[:limit] if limit else files
    return [(f.stem, _crop64(read_rgb(f))) for f in files]


def _crop64(rgb: np.ndarray) -> np.ndarray:
    """Crop to multiples of 64 as in the paper's protocol (no padding for neural codecs)."""
    h, w = (rgb.shape[0] // 64) * 64, (rgb.shape[1] // 64) * 64
    return rgb[:h, :w]


@contextlib.contextmanager
def analysis_memo(model):
    """Within the block, ``model.g_a`` remembers each image's ẏ = g_a(x): a sweep encodes every
    image at every (λ, η), and ẏ depends on the image alone (λ scales it afterwards, eq. 13), so
    g_a runs once per image instead of once per point. Same outputs (tested); the memory is
    dropped at the end (about 0.8 MB per 768×512 image)."""
    import hashlib

    import torch
    g_a, memo = model.g_a, {}

    class Memo(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            key = (tuple(x.shape), hashlib.blake2b(x.detach().cpu().numpy().tobytes(), digest_size=16).digest())
            if key not in memo:
                memo[key] = g_a(x)
            return memo[key]

    model.g_a = Memo()
    try:
        yield
    finally:
        model.g_a = g_a


def learned_points(codec, images, scheme: str, lambdas, etas, snr_db: float, seed: int,
                   progress: bool = True, rx_snr: str = "estimated", nu_db: float | None = None,
                   msssim: bool = False) -> dict[tuple[float, float], dict[str, list[float]]]:
    """For every (λ, η): per-image (cbr, psnr[, ms-ssim]) over AWGN at ``snr_db``.

    ``ntscc+`` is the same model held at its fixed training SQI λ0 (only η varies). The decoder
    gets the receiver's SNR estimate (``rx_snr="estimated"``, see ``LearnedCodec.transmit_awgn``)
    or the true SNR; the encoder is told ``nu_db`` (default ``snr_db``).
    """
    from tqdm import tqdm
    lams = [codec.model.cfg.lambda0] if scheme == "ntscc+" else list(lambdas)
    grid = [(lam, eta) for lam in lams for eta in etas]
    out: dict = {}
    bar = tqdm(total=len(grid) * len(images), desc=f"{scheme} @{snr_db:g}dB", file=sys.stderr,
               disable=not progress, mininterval=2)
    with analysis_memo(codec.inference_model):
        for lam, eta in grid:
            rng = np.random.default_rng(seed)
            res = {}
            for name, rgb in images:
                rec, enc = codec.transmit_awgn(rgb, lam, eta, snr_db, rng, nu_db=nu_db, rx_snr=rx_snr)
                _count_side(enc)
                res[name] = [enc.cbr, psnr(rgb, rec)] + ([ms_ssim(rgb, rec)] if msssim else [])
                bar.update(1)
            out[(lam, eta)] = res
    bar.close()
    return out


def pareto_front(points: list[list[float]]) -> list[list[float]]:
    """Upper-left front of (cbr, psnr) points: no other point has lower CBR and higher PSNR."""
    front, best = [], -math.inf
    for c, p in sorted((round(c, 5), round(p, 3)) for c, p in points):
        if p > best:  # on the rounded values: the front's PSNRs strictly increase
            front.append([c, p])
            best = p
    return front


def average_point(res: dict[str, list[float]]) -> list[float]:
    arr = np.array(list(res.values()))
    return [float(arr[:, 0].mean()), float(arr[:, 1].mean())]


def make_classical(scheme: str, vvc_preset: str | None = None, **options):
    """A classical scheme for offline evaluation. VVC uses vvenc's ``vvc_preset``
    (default :data:`CLASSICAL_VVC_PRESET`; the preset is stated in every result); ``options``
    go to the chain (e.g. ``bler_target``)."""
    from core.classical.chain import make_scheme
    codec = scheme.split("+")[0]
    opts = {"vvc": {"preset": vvc_preset or CLASSICAL_VVC_PRESET}}.get(codec)
    return make_scheme(scheme, codec_options=opts, **options)


#: vvenc preset of the sweeps (SNR, fading) and the live-speed benchmarks: ``faster`` keeps them
#: within a session on this 2-core CPU (``medium`` costs ~8 s per 768x512 encode and an
#: Appendix-A sweep needs dozens per image). The RD tables use :data:`RD_VVC_PRESET`.
CLASSICAL_VVC_PRESET = "faster"
#: The RD tables' anchor is the stronger ``medium`` preset (cached per image and QP), so the
#: learned chain is measured against what an engineer would encode offline.
RD_VVC_PRESET = "medium"
VVC_PRESETS = ("faster", "fast", "medium", "slow", "slower")


def classical_curve(scheme: str, images, cbrs, snr_db: float, seed: int,
                    trials: int = 2, msssim: bool = False, vvc_preset: str | None = None) -> tuple[list, dict]:
    """Average PSNR of a classical scheme at each CBR budget (paper Appendix A).

    ``<codec>+ldpc``: per image the largest-rate QP that fits each MCS; the MCS with the best
    average distortion over the data set is kept (failed frames count as the per-channel mean
    image). ``<codec>+capacity``: the largest-rate QP within capacity arrives error-free.

    Each point sits at the CBR actually spent, averaged over the images: the transport block's
    symbols plus the grant (``core.classical.chain.grant_channel_uses``), not the nominal
    budget (a transport block rarely fills it; the rest of the budget stays idle). The curve is
    ``[[cbr_spent, psnr], ...]`` in budget order. With ``msssim`` each per-image point gets a
    third value, the expected MS-SSIM (success rate · codec reconstruction + failure rate ·
    mean image, as the PSNR's MSE).
    """
    from core.classical.chain import select_dataset_mcs
    from core.classical.codecs import image_key, mean_image
    from core.link import sidepart
    chain = make_classical(scheme, vvc_preset)
    rng = np.random.default_rng(seed)
    # the grant rides the frame's digital part: its channel uses come off the budget
    grant_bytes = sidepart.grant_size(chain.codec.name)
    grant_uses = sidepart.channel_uses(grant_bytes, snr_db)
    grant = grant_uses
    per_image: dict[str, list] = {name: [] for name, _ in images}
    curve = []
    from tqdm import tqdm
    bar = tqdm(total=len(cbrs) * len(images), desc=f"{scheme} @{snr_db:g}dB", file=sys.stderr, mininterval=2)

    def ticked(result):  # one image done at one budget (a slow preset takes minutes per image)
        bar.update(1)
        return result
    for budget in cbrs:
        if scheme.endswith("+capacity"):
            results = [ticked(chain.transmit(rgb, budget, snr_db=snr_db)) for _, rgb in images]
            points = [((r.channel_uses + grant) / (3 * rgb.shape[0] * rgb.shape[1]),
                       r.psnr if r.psnr is not None else float("nan"))
                      + ((ms_ssim(rgb, r.recon),) if msssim else ())
                      for r, (_, rgb) in zip(results, images)]
        else:
            sweeps = [ticked(chain.sweep(rgb, max(0.0, budget - grant_uses / (3 * rgb.shape[0] * rgb.shape[1])),
                                         snr_db=snr_db, trials=trials, rng=rng, prune_db=2.0))
                      for _, rgb in images]
            mcs = select_dataset_mcs(sweeps)
            points = []
            for (_, rgb), outs in zip(images, sweeps):
                o = next(o for o in outs if o.mcs == mcs)
                n_px = 3 * rgb.shape[0] * rgb.shape[1]
                grey = np.full_like(rgb, 128)
                grant_ok = _send_grant(grant_bytes, snr_db, rng)
                pt = ((o.channel_uses + grant_uses) / n_px, o.mean_psnr if grant_ok else psnr(rgb, grey))
                if msssim:
                    fail = ms_ssim(rgb, mean_image(rgb))
                    ok = 0.0
                    if o.param is not None and o.success_rate > 0:
                        cp = chain.cache.point(chain.codec, rgb, o.param, image_key(rgb),
                                               with_data=True)
                        ok = ms_ssim(rgb, chain.codec.decode(cp.data, rgb.shape))
                    pt += ((o.success_rate * ok + (1 - o.success_rate) * fail) if grant_ok
                           else ms_ssim(rgb, grey),)
                points.append(pt)
        for (name, _), pt in zip(images, points):
            per_image[name].append([round(float(pt[0]), 5), round(float(pt[1]), 3)]
                                   + [round(float(v), 6) for v in pt[2:]])
        spent = float(np.mean([pt[0] for pt in points]))
        curve.append([round(spent, 5), round(float(np.nanmean([pt[1] for pt in points])), 3)])
        log.info("%s @ CBR budget %g (spent %.4f): %.2f dB", scheme, budget, spent, curve[-1][1])
    bar.close()
    return curve, per_image


def _send_grant(n_bytes: int, snr_db: float, rng: np.random.Generator) -> bool:
    """One grant of ``n_bytes`` through the digital part over AWGN at ``snr_db`` (MCS from
    the same SNR as CQI): whether it arrived. Counted in ``GRANT_STATS``."""
    from core.link import sidepart
    blob = rng.bytes(n_bytes)
    got = sidepart.decode(sidepart.awgn(sidepart.encode(blob, snr_db), snr_db, rng),
                          10 ** (-snr_db / 10))
    ok = got.data == blob
    GRANT_STATS["frames"] += 1
    GRANT_STATS["grant_failed"] += int(not ok)
    return ok


def bd_rates(curves: dict[str, list], anchor: str) -> dict[str, float]:
    """BD-rate (CBR saving at equal PSNR, %, negative = better) of every scheme vs ``anchor``."""
    import bjontegaard as bd
    if anchor not in curves or len(curves[anchor]) < 4:
        return {}
    a = np.array(curves[anchor])
    out = {}
    for name, pts in curves.items():
        t = np.array(pts)
        if name == anchor or len(t) < 4:
            continue
        lo, hi = max(a[:, 1].min(), t[:, 1].min()), min(a[:, 1].max(), t[:, 1].max())
        if hi <= lo:
            out[name] = float("nan")  # no PSNR overlap: BD-rate undefined
            continue
        try:
            out[name] = float(bd.bd_rate(a[:, 0], a[:, 1], t[:, 0], t[:, 1], method="pchip",
                                         require_matching_points=False))
        except Exception as exc:  # degenerate curves: report, do not crash the evaluation
            log.warning(f"BD-rate of {name} failed: {exc}")
            out[name] = float("nan")
    return out


def vvc_presets(schemes: list[str], reused: dict, preset: str) -> dict[str, str]:
    """The vvenc preset behind each VVC scheme: a reused curve keeps the one it was made with
    (results from before this key existed used ``faster``)."""
    return {s: (reused.get("vvc_preset", {}).get(s, "faster") if s in reused.get("curves", {}) else preset)
            for s in schemes if s.startswith("vvc")}


def load_reused(paths: str | None, schemes: list[str], snr_db: float, n_images: int) -> dict:
    """The curves of earlier ``eval rd`` JSONs (comma-separated ``paths``) for ``schemes``: each
    scheme from the first JSON that has it, with its points, per-image values, MS-SSIM curve and
    vvenc preset; ``side_info`` counters summed over the JSONs that gave a scheme."""
    merged: dict = {"curves": {}, "per_image": {}, "points": {}, "curves_msssim_db": {},
                    "vvc_preset": {}, "side_info": {}, "model": None}
    for path in (paths or "").split(","):
        if not path.strip():
            continue
        d = json.loads(Path(path.strip()).read_text())
        if d.get("snr_db") != snr_db or d.get("n_images") != n_images:
            raise SystemExit(f"--reuse {path}: made at {d.get('snr_db')} dB on {d.get('n_images')} "
                             f"images, this run is {snr_db} dB on {n_images}: run it again or drop it")
        taken = [s for s in schemes if s in d.get("curves", {}) and s not in merged["curves"]]
        for s in taken:
            for key in ("curves", "per_image", "points", "curves_msssim_db", "vvc_preset"):
                if s in (d.get(key) or {}):
                    merged[key][s] = d[key][s]
        if any(t in LEARNED for t in taken) and merged["model"] is None:
            merged["model"] = d.get("model")  # None when the JSON predates provenance
        if taken:
            for key, v in (d.get("side_info") or {}).items():
                if isinstance(v, int):
                    merged["side_info"][key] = merged["side_info"].get(key, 0) + v
    return merged


def _lambda0(weights: str | None) -> float:
    """The fixed SQI λ0 of the model behind ``weights`` (ntscc+ uses only it)."""
    from core.codec.config import ModelConfig, get_config
    from core.codec.provenance import DEFAULT_WEIGHTS, read_metadata
    config = read_metadata(weights or DEFAULT_WEIGHTS)["config"]
    return (ModelConfig.from_dict(config) if config else get_config("small")).lambda0


def lambda0_subset(reused: dict, lam0: float) -> tuple[dict, list, dict, list]:
    """ntscc+ from a reused compatible sweep, as a fresh run makes it: the (λ0, η) points only.

    Returns (points, front, per-image values, MS-SSIM front or [])."""
    keys = list(reused["points"]["compatible"])
    sel = [i for i, k in enumerate(keys) if abs(float(k.split(",")[0]) - lam0) < 1e-9]
    if not sel:
        raise SystemExit(f"--reuse: the compatible sweep has no point at λ0 = {lam0:g} for ntscc+")
    points = {keys[i]: reused["points"]["compatible"][keys[i]] for i in sel}
    per_img = {name: [v[i] for i in sel] for name, v in reused["per_image"]["compatible"].items()}
    ms_front = []
    if all(len(v[0]) > 2 for v in per_img.values()):  # per-image [cbr, psnr, ms-ssim]
        ms_front = msssim_front([[v[j] for v in per_img.values()] for j in range(len(sel))])
    return points, pareto_front(list(points.values())), per_img, ms_front


def msssim_front(points_per_image: list[list[list[float]]]) -> list[list[float]]:
    """Front of (mean CBR, MS-SSIM dB of the mean MS-SSIM) over operating points, each given as
    its per-image [cbr, psnr, ms-ssim] values."""
    return pareto_front([[float(np.mean([v[0] for v in per])), ms_ssim_db(float(np.mean([v[2] for v in per])))]
                         for per in points_per_image])


def run_rd(args) -> dict:
    images = load_images(args.dataset, args.limit)
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    curves, per_image, points = {}, {}, {}
    reused = load_reused(getattr(args, "reuse", None), schemes, args.snr, len(images))
    codec = None
    learned_cache: dict = {}
    curves_ms: dict[str, list] = {}
    args.msssim = getattr(args, "msssim", False)
    t0 = time.time()
    # compatible first, so ntscc+ (its λ0 subset) can be taken from it
    schemes = sorted(schemes, key=lambda s: s != "compatible")
    for scheme in schemes:
        if scheme in reused.get("curves", {}):
            curves[scheme] = reused["curves"][scheme]
            per_image[scheme] = reused.get("per_image", {}).get(scheme, {})
            if scheme in reused.get("points", {}):
                points[scheme] = reused["points"][scheme]
            if scheme in reused.get("curves_msssim_db", {}):  # the MS-SSIM curve travels with it
                curves_ms[scheme] = reused["curves_msssim_db"][scheme]
            continue
        if scheme == "ntscc+" and "compatible" in reused.get("curves", {}):
            points[scheme], curves[scheme], per_image[scheme], ms_curve = lambda0_subset(
                reused, _lambda0(args.weights))
            if ms_curve:
                curves_ms[scheme] = ms_curve
            continue
        if scheme in LEARNED:
            if codec is None:
                from core.codec.learned import LearnedCodec
                codec = LearnedCodec(device=args.device, weights=args.weights)
            lams = _floats(args.lambdas) if args.lambdas else codec.model.cfg.lambdas
            lam0 = codec.model.cfg.lambda0
            etas = model_etas(codec.model.cfg, args.etas)
            if scheme == "compatible":
                pts = learned_points(codec, images, scheme, lams, etas, args.snr, args.seed,
                                     rx_snr=args.rx_snr, msssim=args.msssim)
                learned_cache["compatible"] = pts
            else:  # ntscc+ (fixed SQI λ0) is a subset of the compatible sweep: reuse it
                pts = {k: v for k, v in learned_cache.get("compatible", {}).items()
                       if abs(k[0] - lam0) < 1e-9}
                pts = pts or learned_points(codec, images, scheme, lams, etas, args.snr, args.seed, rx_snr=args.rx_snr,
                                            msssim=args.msssim)
            avg = {f"{lam:g},{eta:g}": average_point(r) for (lam, eta), r in pts.items()}
            points[scheme] = avg
            curves[scheme] = pareto_front(list(avg.values()))
            per_image[scheme] = {name: [r[name] for r in pts.values()] for name, _ in images}
            if args.msssim:
                curves_ms[scheme] = msssim_front([list(r.values()) for r in pts.values()])
        else:
            curves[scheme], per_image[scheme] = classical_curve(scheme, images, _floats(args.cbrs),
                                                                args.snr, args.seed,
                                                                msssim=args.msssim,
                                                                vvc_preset=args.vvc_preset)
            if args.msssim:
                arr = np.array([per_image[scheme][name] for name, _ in images], float)  # img, cbr, 3
                curves_ms[scheme] = [[round(float(arr[:, k, 0].mean()), 5),
                                      round(ms_ssim_db(float(arr[:, k, 2].mean())), 3)]
                                     for k in range(arr.shape[1])]
    result = {"snr_db": args.snr, "channel": args.channel, "dataset": Path(args.dataset).name,
              "n_images": len(images), "learned_rx_snr": args.rx_snr,
              "vvc_preset": vvc_presets(schemes, reused, args.vvc_preset),
              "classical_cbr": "channel uses spent (transport block + grant), mean over images; "
                               "budgets: --cbrs", "classical_budgets": _floats(args.cbrs),
              "curves": curves, "points": points,
              "per_image": per_image, "anchor": args.anchor,
              "bd_rate": bd_rates(curves, args.anchor), "seconds": round(time.time() - t0, 1),
              "model": _rd_model(schemes, reused, codec, args.weights),
              **side_report(reused.get("side_info"))}
    if args.msssim:
        result.update(msssim="MS-SSIM in dB, -10·log10(1 - mean MS-SSIM) (pytorch-msssim, 5 scales)",
                      curves_msssim_db=curves_ms, bd_rate_msssim=bd_rates(curves_ms, args.anchor))
    if args.plot:
        plot_curves(curves, f"RD over AWGN {args.snr:g} dB ({result['dataset']}, {len(images)} images)",
                    "CBR ρ", args.plot)
        if curves_ms:
            plot_curves(curves_ms, f"MS-SSIM over AWGN {args.snr:g} dB ({result['dataset']}, "
                        f"{len(images)} images)", "CBR ρ", msssim_plot_path(args.plot),
                        ylabel="MS-SSIM (dB)")
    if getattr(args, "table", None):
        Path(args.table).write_text(markdown_table(result))
    return result


def _rd_model(schemes: list[str], reused: dict, codec, weights: str | None) -> dict | None:
    """The model behind an RD run's learned curves: the one measured here, else the one the
    reused JSON recorded; None when no learned scheme is in the run."""
    from core.codec.provenance import weights_identity
    if codec is not None:
        return weights_identity(weights)
    if any(s in LEARNED for s in schemes):
        return reused.get("model")
    return None


def interp_at(curve: list[list[float]], x: float) -> float:
    """A curve's y linearly interpolated at ``x``; NaN outside its x range."""
    c = np.array(curve)
    if len(c) == 0 or x < c[0, 0] or x > c[-1, 0]:
        return float("nan")
    return float(np.interp(x, c[:, 0], c[:, 1]))


def front_psnr_at_budget(front: list[list[float]], cbr: float) -> float:
    """A front's PSNR at CBR ``cbr``: interpolated between its points, its last PSNR beyond its
    end (more symbols than the encoder uses buy nothing), NaN before its start."""
    if not front or cbr < front[0][0]:
        return float("nan")
    return front[-1][1] if cbr >= front[-1][0] else interp_at(front, cbr)


def markdown_table(result: dict) -> str:
    lines = [f"RD at AWGN {result['snr_db']:g} dB on {result['dataset']} ({result['n_images']} images).",
             "", "| scheme | PSNR @ CBR 0.02 | @ 0.04 | @ 0.08 | BD-rate vs " + result["anchor"] + " |",
             "|---|---|---|---|---|"]
    for name, curve in result["curves"].items():
        vals = [interp_at(curve, x) for x in (0.02, 0.04, 0.08)]
        bd_text = _bd_text(result["bd_rate"].get(name), name == result["anchor"])
        lines.append(f"| {name} | " + " | ".join("—" if math.isnan(v) else f"{v:.2f}" for v in vals)
                     + f" | {bd_text} |")
    if result.get("curves_msssim_db"):
        lines += ["", "| scheme | MS-SSIM (dB) @ CBR 0.02 | @ 0.04 | @ 0.08 | MS-SSIM BD-rate vs "
                  + result["anchor"] + " |", "|---|---|---|---|---|"]
        for name, curve in result["curves_msssim_db"].items():
            vals = [interp_at(curve, x) for x in (0.02, 0.04, 0.08)]
            bd_text = _bd_text(result.get("bd_rate_msssim", {}).get(name), name == result["anchor"])
            lines.append(f"| {name} | " + " | ".join("—" if math.isnan(v) else f"{v:.2f}" for v in vals)
                         + f" | {bd_text} |")
    if result.get("vvc_preset"):
        lines += ["", "vvenc preset: " + ", ".join(f"{k} `{v}`" for k, v in result["vvc_preset"].items())
                  + " (the live chain encodes with `faster`)."]
    return "\n".join(lines) + "\n"


def _bd_text(bd: float | None, is_anchor: bool) -> str:
    if is_anchor:
        return "anchor"
    return "—" if bd is None or math.isnan(bd) else f"{bd:+.1f} %"


def run_snr(args) -> dict:
    """PSNR vs SNR at a CBR budget: per SNR, the best (λ, η) whose mean CBR fits the budget.

    A learned scheme also gets its front's PSNR interpolated at the budget (``curves_interpolated``):
    on a coarse η grid the best fitting point can sit well under the budget, and an encoder whose
    symbol count moves with ν (it does) then loses or wins a grid step; the interpolated value
    compares the encoders at equal CBR (``nu_gain_db``: per-ν minus fixed-ν, interpolated)."""
    images = load_images(args.dataset, args.limit)
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    snrs = _floats(args.snrs)
    fixed = getattr(args, "fixed_nu", "off")
    fixed_nu = None if str(fixed).strip().lower() in ("", "off", "none") else float(fixed)
    curves: dict[str, list] = {}
    interpolated: dict[str, list] = {}
    codec = None
    for scheme in schemes:
        variants = [(scheme, None)]
        if scheme in LEARNED and fixed_nu is not None:
            variants.append((fixed_nu_name(scheme, fixed_nu), fixed_nu))
        for name, nu in variants:
            curve = []
            for snr in snrs:
                if scheme in LEARNED:
                    if codec is None:
                        from core.codec.learned import LearnedCodec
                        codec = LearnedCodec(device=args.device, weights=args.weights)
                    lams = _floats(args.lambdas) if args.lambdas else codec.model.cfg.lambdas
                    pts = learned_points(codec, images, scheme, lams, model_etas(codec.model.cfg, args.etas), snr,
                                         args.seed, rx_snr=args.rx_snr, nu_db=nu)
                    avg = [average_point(r) for r in pts.values()]
                    fit = [p for c, p in avg if c <= args.cbr]
                    curve.append([snr, max(fit) if fit else float("nan")])
                    interpolated.setdefault(name, []).append(
                        [snr, round(front_psnr_at_budget(pareto_front(avg), args.cbr), 3)])
                else:
                    c, _ = classical_curve(scheme, images, [args.cbr], snr, args.seed)
                    curve.append([snr, c[0][1]])
            curves[name] = curve
    result = {"cbr": args.cbr, "channel": "awgn", "dataset": Path(args.dataset).name,
              "n_images": len(images), "learned_rx_snr": args.rx_snr,
              "vvc_preset": vvc_presets(schemes, {}, CLASSICAL_VVC_PRESET),
              "learned_encoder_nu": {"<scheme>": "ν = the channel SNR (a CQI that matches it)",
                                     **({fixed_nu_name(s, fixed_nu): f"ν = {fixed_nu:g} dB whatever the channel"
                                         for s in schemes if s in LEARNED} if fixed_nu is not None else {})},
              "curves": curves, "curves_interpolated": interpolated, **side_report()}
    for scheme in schemes:
        if scheme in LEARNED and fixed_nu is not None:
            per_nu, fixed_curve = interpolated[scheme], interpolated[fixed_nu_name(scheme, fixed_nu)]
            result.setdefault("nu_gain_db", {})[scheme] = [
                [s, round(a - b, 3)] for (s, a), (_, b) in zip(per_nu, fixed_curve)]
    if args.plot:
        shown = {**curves, **{f"{k} (interpolated at CBR {args.cbr:g})": v for k, v in interpolated.items()}}
        plot_curves(shown, f"PSNR vs SNR at CBR {args.cbr:g} ({result['dataset']})", "SNR (dB)", args.plot)
    return result


def fixed_nu_name(scheme: str, nu_db: float) -> str:
    """Curve name of a learned scheme whose encoder is told a fixed ν."""
    return f"{scheme} ν={nu_db:g}dB"


def run_roi(args) -> dict:
    """Viewport PSNR vs CBR with and without viewport ROI, per panorama and viewport.

    Both modes sweep the same (λ, η-scale) grid; each mode's Pareto front (CBR vs viewport
    PSNR averaged over panoramas and yaws) is compared at equal viewport PSNR. A uniform
    transmission does not depend on the viewport, so it is encoded once per panorama.
    """
    from PIL import Image
    from tqdm import tqdm

    from core.codec.learned import LearnedCodec
    from core.media.geometry import Viewport, eta_map, quality_map, render_viewport, roi_grid_mask
    from core.media.source import parse_resolution
    w, h = parse_resolution(args.resolution)
    folder = args.dataset if args.dataset != str(DEFAULT_KODAK) else str(asset("data", "erp"))
    files = list_images(folder)[: args.limit or None]
    codec = LearnedCodec(device=args.device, weights=args.weights)
    lams = _floats(args.lambdas) if args.lambdas else codec.model.cfg.lambdas
    grid = [(lam, sc) for lam in lams for sc in _floats(args.scales)]
    yaws = _floats(args.yaws)
    views = [Viewport(yaw, 0.0, 90.0, (256, 256)) for yaw in yaws]
    modes = ("uniform", "roi") + ((f"roi+edit T={args.edit_steps}",) if args.edit_steps else ())
    acc = {m: {g: [] for g in grid} for m in modes}
    bar = tqdm(total=len(files) * len(grid) * (1 + (len(modes) - 1) * len(views)), desc="roi", file=sys.stderr,
               mininterval=2)
    # g_a once per panorama; the editing path differentiates through g_a, so no memo there
    with analysis_memo(codec.inference_model) if not args.edit_steps else contextlib.nullcontext():
        for f in files:
            erp = np.asarray(Image.fromarray(read_rgb(f)).resize((w, h), Image.BICUBIC))
            refs = [render_viewport(erp, vp) for vp in views]
            masks = [roi_grid_mask((h, w), [vp]) for vp in views]
            for lam, sc in grid:
                rec, enc = codec.transmit_awgn(erp, lam, sc, args.snr, np.random.default_rng(args.seed),
                                               rx_snr=args.rx_snr)
                _count_side(enc)
                bar.update(1)
                for vp, ref in zip(views, refs):
                    acc["uniform"][(lam, sc)].append([enc.cbr, psnr(ref, render_viewport(rec, vp))])
                for vp, ref, mask in zip(views, refs, masks):
                    # the η map alone, and (eq. 20) the η map plus T editing steps on the ROI-weighted loss
                    for mode, steps in zip(modes[1:], (0, args.edit_steps)):
                        rec, enc = codec.transmit_awgn(erp, lam, eta_map(mask, 0.25 * sc / 0.2, 0.05 * sc / 0.2),
                                                       args.snr, np.random.default_rng(args.seed),
                                                       edit_steps=steps, quality=quality_map(mask)[:h, :w] if steps
                                                       else None, rx_snr=args.rx_snr)
                        _count_side(enc)
                        acc[mode][(lam, sc)].append([enc.cbr, psnr(ref, render_viewport(rec, vp))])
                        bar.update(1)
    bar.close()
    points = {m: {f"{lam:g},{sc:g}": np.mean(v, axis=0).round(5).tolist() for (lam, sc), v in a.items()}
              for m, a in acc.items()}
    curves = {m: pareto_front(list(p.values())) for m, p in points.items()}
    result = {"snr_db": args.snr, "resolution": f"{w}x{h}", "panoramas": [f.name for f in files],
              "yaws": yaws, "lambdas": list(lams), "scales": _floats(args.scales),
              "edit_steps": args.edit_steps, "points_lambda_scale": points, "curves": curves,
              **equal_quality_savings(curves["uniform"], curves["roi"]),
              "bd_rate_roi_vs_uniform_pct": bd_rates(curves, "uniform").get("roi"), **side_report()}
    if args.edit_steps:
        edited = modes[2]
        result.update(bd_rate_vs_uniform_pct={m: bd_rates(curves, "uniform").get(m) for m in modes[1:]},
                      bd_rate_edit_vs_roi_pct=bd_rates({"roi": curves["roi"], edited: curves[edited]}, "roi")
                      .get(edited))
    if args.plot:
        plot_curves(curves, f"viewport PSNR vs CBR, ROI vs uniform (AWGN {args.snr:g} dB)", "CBR ρ", args.plot)
    return result


def equal_quality_savings(anchor: list[list[float]], test: list[list[float]],
                          tolerance_db: float = 0.3) -> dict:
    """CBR saving of ``test`` over ``anchor`` at equal PSNR, two ways.

    ``interpolated``: at each test point whose PSNR lies inside the anchor front's range, the
    anchor's CBR interpolated at that PSNR. ``matched``: each test point against the cheapest
    measured anchor point within ``tolerance_db`` — no interpolation at all.
    """
    a = np.array(sorted(anchor, key=lambda p: p[1]))
    interp, matched = [], []
    for c, p in test:
        if a[0, 1] <= p <= a[-1, 1]:
            ca = float(np.interp(p, a[:, 1], a[:, 0]))
            interp.append({"psnr": p, "cbr": c, "cbr_anchor": round(ca, 5),
                           "saving_pct": round(100 * (1 - c / ca), 1)})
        near = [q for q in a.tolist() if abs(q[1] - p) <= tolerance_db]
        if near:
            ca, pa = min(near)
            matched.append({"psnr": p, "cbr": c, "psnr_anchor": pa, "cbr_anchor": ca,
                            "saving_pct": round(100 * (1 - c / ca), 1)})

    def mean(rows):
        return round(float(np.mean([r["saving_pct"] for r in rows])), 1) if rows else None
    return {"saving_interpolated": interp, "saving_matched_within_db": tolerance_db,
            "saving_matched": matched, "mean_saving_interpolated_pct": mean(interp),
            "mean_saving_matched_pct": mean(matched)}


def read_trace(path: str) -> np.ndarray:
    """SNR per frame (dB) from a CSV with an ``snr_db`` column (or one number per line)."""
    import csv as _csv
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"SNR trace {p} not found")
    lines = [ln for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    rows = list(_csv.reader(lines))
    if rows and "snr_db" in rows[0]:
        col = rows[0].index("snr_db")
        vals = [float(r[col]) for r in rows[1:]]
    else:
        vals = [float(r[-1]) for r in rows]
    arr = np.array(vals, dtype=float)
    if arr.size == 0 or not np.isfinite(arr).all() or np.abs(arr).max() > 60:
        raise ValueError(f"SNR trace {p}: needs finite SNR values in dB (|SNR| <= 60)")
    return arr


class _FadingReceivers:
    """What both receivers of ``eval fading`` share: the noise and SNR-estimate generator (one
    stream, drawn in the order the frames go on the air) and the picture each chain shows when
    a frame cannot be decoded (its previous one; mid-grey first)."""

    def __init__(self, args, hw: tuple[int, int]) -> None:
        self.estimated = args.rx_snr == "estimated"
        self.rng = np.random.default_rng(args.seed)
        grey = np.full((*hw, 3), 128, np.uint8)
        self.shown = {"learned": grey, "classical": grey}

    def on_air(self, symbols: np.ndarray, snr_db: float) -> tuple[np.ndarray, float]:
        """(received symbols after AWGN at ``snr_db``, the SNR the receiver estimates from them)."""
        from core.link import sidepart
        from core.phy.ofdm import emulate_snr_estimate
        y = sidepart.awgn(symbols, snr_db, self.rng)
        return y, emulate_snr_estimate(snr_db, y.size, self.rng) if self.estimated else snr_db


def _fading_learned_frame(codec, rgb: np.ndarray, snr: float, cqi: float, args,
                          rx: _FadingReceivers) -> dict:
    """One frame of the learned chain: encoded for the delayed CQI with η steered to the budget
    (one correction, as the live TX's controller does), side part + JSCC symbols on the air, the
    receiver decoding with its own SNR estimate (LDPC LLRs and the JSCC decoder's ν)."""
    nu = float(np.clip(cqi, 0, 14))
    enc = codec.encode(rgb, args.lam, 0.2, nu)
    eta = codec.model.cfg.clip_eta(0.2 * args.cbr / enc.cbr)  # inside the trained η range
    enc = codec.encode(rgb, args.lam, eta, nu)
    y, snr_rx = rx.on_air(codec.frame_symbols(enc, nu), snr)
    rec, side_ok = codec.receive_frame(y, 10 ** (-snr_rx / 10), float(np.clip(snr_rx, 0, 14)),
                                       rx.shown["learned"])
    enc.side_ok = side_ok
    _count_side(enc)
    rx.shown["learned"] = rec
    return {"rx_snr_db_learned": round(snr_rx, 3), "learned_psnr": round(psnr(rgb, rec), 3),
            "learned_cbr": round(enc.cbr, 5), "learned_side_ok": side_ok}


def _fading_classical_frame(chain, rgb: np.ndarray, snr: float, cqi: float, args, olla,
                            rx: _FadingReceivers) -> dict:
    """One frame of the classical chain: MCS from the delayed CQI (less the OLLA back-off),
    the grant's channel uses taken off the budget, grant + transport block on the air; a failed
    grant or transport block shows the previous picture (the cliff)."""
    from core.link import sidepart
    h, w = rgb.shape[:2]
    grant_uses = sidepart.channel_uses(sidepart.grant_size(chain.codec.name), cqi)
    margin = olla.margin_db if olla else 0.0
    tx = chain.symbols_for(rgb, max(0.0, args.cbr - grant_uses / (3 * h * w)),
                           cqi_db=olla.effective_cqi(cqi) if olla else cqi)
    blob = sidepart.pack_grant(tx.meta)
    y, snr_rx = rx.on_air(np.concatenate([sidepart.encode(blob, cqi), tx.symbols]), snr)
    got = sidepart.decode(y, 10 ** (-snr_rx / 10))
    GRANT_STATS["frames"] += 1
    if got.data == blob:
        res = chain.receive(y[got.n_symbols:], 10 ** (-snr_rx / 10), sidepart.unpack_grant(got.data),
                            original=rgb, snr_db=snr)
        rec, ok = res.recon, bool(res.success)
    else:
        GRANT_STATS["grant_failed"] += 1
        rec, ok = rx.shown["classical"], False
    rx.shown["classical"] = rec
    if olla:
        olla.observe(ok)
    return {"rx_snr_db_classical": round(snr_rx, 3), "classical_psnr": round(psnr(rgb, rec), 3),
            "classical_cbr": round((tx.symbols.size + grant_uses) / (3 * h * w), 5),
            "classical_ok": ok, "mcs": tx.meta["mcs"], "qp": tx.meta["param"],
            "olla_margin_db": round(margin, 2)}


def _fading_summary(rows: list[dict], args) -> dict:
    lp = np.array([r["learned_psnr"] for r in rows])
    cp = np.array([r["classical_psnr"] for r in rows])
    return {"trace": Path(args.trace).name, "cbr": args.cbr, "frames": args.frames,
            "classical": args.classical,
            "vvc_preset": args.vvc_preset if args.classical.startswith("vvc") else None,
            "feedback_delay": args.feedback_delay, "olla": args.olla,
            "bler_target": args.bler_target, "rx_snr": args.rx_snr,
            "learned_mean_psnr": round(float(lp.mean()), 3), "classical_mean_psnr": round(float(cp.mean()), 3),
            "learned_min_psnr": round(float(lp.min()), 3), "classical_min_psnr": round(float(cp.min()), 3),
            "classical_failures": int(sum(not r["classical_ok"] for r in rows)),
            "learned_frames_below_mean_minus_5db": int((lp < lp.mean() - 5).sum()),
            "learned_side_failed": int(sum(not r["learned_side_ok"] for r in rows)),
            **side_report(), "per_frame": rows}


def run_fading(args) -> dict:
    """Per-frame PSNR of the compatible model and a classical chain over an SNR trace.

    Both chains see the same per-frame SNR and the same (delayed) CQI: frame t is encoded with
    the CQI reported for frame t - delay, and transmitted at SNR_t. The classical chain picks
    its MCS at the live link's frame-error target (``--bler-target``, default 1 %: no HARQ;
    with ``--olla``, from the CQI minus an ACK-driven back-off) and the largest-rate QP within
    the CBR budget; a frame whose transport block fails shows the per-channel mean image (the
    cliff). Both receivers decode with the SNR they would estimate from the frame's pilots
    (``--rx-snr estimated``, :func:`core.phy.ofdm.emulate_snr_estimate`), as the live RX does.
    """
    import itertools

    from core.classical.mcs import OuterLoopLinkAdaptation
    from core.codec.learned import LearnedCodec
    from core.media.source import FrameSource, parse_resolution
    trace = read_trace(args.trace)
    w, h = parse_resolution(args.resolution)
    src = args.dataset if args.dataset != str(DEFAULT_KODAK) else args.video
    frames = list(itertools.islice(FrameSource(src, (w, h)).frames(), min(args.frames, 300)))
    codec = LearnedCodec(device=args.device, weights=args.weights)
    chain = make_classical(args.classical, args.vvc_preset, bler_target=args.bler_target)
    olla = OuterLoopLinkAdaptation(args.bler_target) if args.olla else None
    rx = _FadingReceivers(args, (h, w))
    rows = []
    for t in range(args.frames):
        rgb = frames[t % len(frames)]
        snr = float(trace[t % len(trace)])
        cqi = float(trace[max(0, t - args.feedback_delay) % len(trace)])
        row = {"frame": t, "snr_db": round(snr, 2), "cqi_db": round(cqi, 2)}
        row.update(_fading_learned_frame(codec, rgb, snr, cqi, args, rx))
        row.update(_fading_classical_frame(chain, rgb, snr, cqi, args, olla, rx))
        rows.append(row)
        if t % 10 == 0:
            log.info(f"fading frame {t}: {rows[-1]}")
    if args.plot:
        plot_fading(rows, args, args.plot)
    return _fading_summary(rows, args)


def plot_fading(rows: list[dict], args, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [r["frame"] for r in rows]
    fig, ax = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    ax[0].plot(t, [r["learned_psnr"] for r in rows], "-", label="compatible NTSCC+")
    ax[0].plot(t, [r["classical_psnr"] for r in rows], "-", label=f"{args.classical} (CQI-driven MCS/QP)")
    fails = [r["frame"] for r in rows if not r["classical_ok"]]
    ax[0].plot(fails, [rows[f]["classical_psnr"] for f in fails], "rx", label="classical frame failed")
    ax[0].set_ylabel("PSNR (dB)"); ax[0].legend(fontsize=8); ax[0].grid(alpha=0.3)
    ax[0].set_title(f"fading trace {Path(args.trace).name}, CBR {args.cbr:g}")
    ax[1].plot(t, [r["snr_db"] for r in rows], "k-", label="SNR")
    ax[1].set_ylabel("SNR (dB)"); ax[1].set_xlabel("frame"); ax[1].grid(alpha=0.3)
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)


def run_edit(args) -> dict:
    """RD with NTSCC++ online editing (T steps) against the amortised model (T = 0).

    Both sweep the same (λ, η) grid; the Pareto fronts are compared (BD-rate and CBR saving
    at equal PSNR).
    """
    from tqdm import tqdm

    from core.codec.learned import LearnedCodec
    images = load_images(args.dataset, args.limit)
    codec = LearnedCodec(device=args.device, weights=args.weights)
    lams = _floats(args.lambdas) if args.lambdas else codec.model.cfg.lambdas
    grid = [(lam, eta) for lam in lams for eta in _floats(args.etas)]
    kappa = getattr(args, "msssim_weight", 0.0)
    points, curves, curves_ms = {}, {}, {}
    bar = tqdm(total=2 * len(grid) * len(images), desc="edit", file=sys.stderr, mininterval=2)
    for steps in (0, args.steps):
        pts = {}
        for lam, eta in grid:
            cb, ps, ms = [], [], []
            for name, rgb in images:
                rec, enc = codec.transmit_awgn(rgb, lam, eta, args.snr, np.random.default_rng(args.seed),
                                               edit_steps=steps, rx_snr=args.rx_snr, msssim_weight=kappa)
                _count_side(enc)
                cb.append(enc.cbr); ps.append(psnr(rgb, rec)); ms.append(ms_ssim(rgb, rec))
                bar.update(1)
            pts[f"{lam:g},{eta:g}"] = [round(float(np.mean(cb)), 5), round(float(np.mean(ps)), 3),
                                       round(float(np.mean(ms)), 6)]
        points[f"T={steps}"] = pts
        curves[f"T={steps}"] = pareto_front([[c, p] for c, p, _ in pts.values()])
        curves_ms[f"T={steps}"] = pareto_front([[c, ms_ssim_db(m)] for c, _, m in pts.values()])
    bar.close()
    test = f"T={args.steps}"
    result = {"snr_db": args.snr, "dataset": Path(args.dataset).name, "n_images": len(images),
              "lambdas": list(lams), "etas": _floats(args.etas), "msssim_weight": kappa,
              "objective": "R + λ·(MSE + κ·(1 - MS-SSIM)) (eq. 21)" if kappa else "R + λ·MSE (eq. 19)",
              "points_lambda_eta": points, "points_columns": ["cbr", "psnr", "ms_ssim"],
              "curves": curves, **equal_quality_savings(curves["T=0"], curves[test]),
              "bd_rate_pct": bd_rates(curves, "T=0").get(test),
              "msssim": "MS-SSIM in dB, -10·log10(1 - mean MS-SSIM)", "curves_msssim_db": curves_ms,
              "bd_rate_msssim_pct": bd_rates(curves_ms, "T=0").get(test), **side_report()}
    if args.plot:
        title = f"NTSCC++ online editing{' (eq. 21, κ=%g)' % kappa if kappa else ''}, AWGN {args.snr:g} dB"
        plot_curves(curves, title, "CBR ρ", args.plot)
        plot_curves(curves_ms, title, "CBR ρ", msssim_plot_path(args.plot), ylabel="MS-SSIM (dB)")
    return result


def msssim_plot_path(path: str) -> str:
    p = Path(path)
    return str(p.with_name(p.stem + "_msssim" + p.suffix))


def plot_curves(curves: dict[str, list], title: str, xlabel: str, path: str,
                ylabel: str = "PSNR (dB)") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, pts in curves.items():
        a = np.array(pts, dtype=float)
        if a.size:
            style = ("-o" if name in LEARNED else
                     "-.^" if name.split(" ")[0] in LEARNED else "--s")
            ax.plot(a[:, 0], a[:, 1], style, label=name, ms=4)
    ax.set_xlabel(xlabel); ax.set_ylabel(ylabel); ax.set_title(title)
    ax.grid(alpha=0.3); ax.legend()
    fig.tight_layout(); Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110); plt.close(fig)


def main(args) -> int:
    runners = {"rd": run_rd, "snr": run_snr, "roi": run_roi, "edit": run_edit, "fading": run_fading}
    for counters in (SIDE_STATS, GRANT_STATS):  # each run reports its own side parts and grants
        counters.update(dict.fromkeys(counters, 0))
    result = runners[args.eval_kind](args)
    if "model" not in result:  # rd records its own (its learned curves may be reused)
        from core.codec.provenance import weights_identity
        uses_model = args.eval_kind != "snr" or any(
            s.strip() in LEARNED for s in args.schemes.split(","))
        result["model"] = weights_identity(args.weights) if uses_model else None
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
    summary = {k: v for k, v in result.items()
               if k not in ("per_image", "points", "per_frame") and not k.startswith("points_")}
    print(json.dumps(summary, indent=1))
    return 0
