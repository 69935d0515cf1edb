"""Command-line options of the flowgraph, shared by the GNU Radio side (``python3 -m
flowgraphs.ofdm_link``) and the ``.venv`` side (``ntscc-xr flowgraph``, ``ntscc-xr link-test``).

stdlib only: no numpy, no gnuradio.
"""
from __future__ import annotations

import argparse

CHANNEL_CHOICES = ("awgn", "rayleigh", "rician", "multipath", "trace")
EQUALISER_CHOICES = ("ummse", "mmse", "zf")
BASE_PORT = 5600

# (dest, flags, kwargs) -- one table so that both sides agree and to_argv can rebuild argv
_OPTIONS: list[tuple[str, tuple[str, ...], dict]] = [
    ("channel", ("--channel",), dict(choices=CHANNEL_CHOICES, default="awgn",
        help="simulated channel (default: awgn); changeable at run time on the control socket")),
    ("snr", ("--snr",), dict(type=float, default=10.0,
        help="average SNR in dB per resource element, Es/N0 (default: 10); for 'trace' the "
             "mean the trace is shifted to")),
    ("cfo", ("--cfo",), dict(type=float, default=0.0,
        help="carrier frequency offset in Hz, relative to --rate (default: 0)")),
    ("timing_offset", ("--timing-offset",), dict(type=float, default=0.0,
        help="timing offset in samples, may be fractional (default: 0)")),
    ("doppler", ("--doppler",), dict(type=float, default=50.0,
        help="maximum Doppler in Hz for rayleigh/rician, relative to --rate (default: 50)")),
    ("k_factor", ("--k-factor",), dict(type=float, default=4.0,
        help="Rician K factor, linear (default: 4)")),
    ("sco_ppm", ("--sco-ppm",), dict(type=float, default=0.0,
        help="sample-clock offset TX vs RX in ppm (default: 0)")),
    ("multipath", ("--multipath",), dict(action="store_true",
        help="add the 3-tap multipath profile to any channel (implied by --channel multipath)")),
    ("trace", ("--trace",), dict(default=None,
        help="SNR trace CSV for --channel trace (default: flowgraphs/traces/cost2100_like.csv)")),
    ("channel_impl", ("--channel-impl",), dict(choices=("auto", "channel_model", "lean"), default="auto",
        help="auto: lean while --sco-ppm is 0, channel_model once a clock offset is set (also at "
             "run time) (default); channel_model: channels.channel_model; lean: the same stock "
             "blocks without its clock-offset resampler (FIR, rotator, noise; half the CPU)")),
    ("detector", ("--detector",), dict(choices=("gr", "python"), default="python",
        help="frame detection: python = the receiver's numpy search over the samples between "
             "frames (default); gr = Schmidl & Cox metric in stock GNU Radio blocks, Python "
             "touches only detected frames (cheaper on an idle/radio stream, ~15 %% slower back "
             "to back, see docs/results/link.md)")),
    ("seed", ("--seed",), dict(type=int, default=0, help="noise/fading seed (default: 0)")),
    ("rate", ("--rate",), dict(type=float, default=5e6,
        help="sample rate in Hz: the USRP rate, and the reference for --cfo/--doppler in "
             "simulation (default: 5e6)")),
    ("equaliser", ("--equaliser",), dict(choices=EQUALISER_CHOICES, default="ummse",
        help="ummse: unbiased per-RE LMMSE = Y/H (default); mmse: biased LMMSE; zf: same as ummse")),
    ("host", ("--host",), dict(default="127.0.0.1",
        help="address the ZMQ sockets bind to (default: 127.0.0.1)")),
    ("base_port", ("--base-port",), dict(type=int, default=BASE_PORT,
        help=f"frames in = base, frames out = base+1, control = base+2 (default: {BASE_PORT}); "
             "0 picks free ports (reported on the READY line)")),
    ("allow_remote", ("--allow-remote",), dict(action="store_true",
        help="allow binding a non-loopback --host (use with --curve-keys)")),
    ("curve_keys", ("--curve-keys",), dict(default=None,
        help="CurveZMQ key folder (ntscc-xr keys DIR): authenticate every client")),
    ("usrp", ("--usrp",), dict(action="store_true",
        help="transmit and receive with a USRP (gr-uhd) instead of the simulated channel")),
    ("usrp_args", ("--usrp-args",), dict(default="",
        help="UHD device address, e.g. 'type=b200' or 'addr=192.168.10.2' (default: first found)")),
    ("freq", ("--freq",), dict(type=float, default=2.45e9, help="USRP centre frequency in Hz (default: 2.45e9)")),
    ("tx_gain", ("--tx-gain",), dict(type=float, default=40.0, help="USRP TX gain in dB (default: 40)")),
    ("rx_gain", ("--rx-gain",), dict(type=float, default=30.0, help="USRP RX gain in dB (default: 30)")),
    ("tx_amplitude", ("--tx-amplitude",), dict(type=float, default=0.25,
        help="USRP: RMS amplitude of the transmitted burst, full scale 1.0 (default: 0.25)")),
]


def add_flowgraph_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Add the flowgraph options (except the ``dest`` names in ``skip``) to ``parser``."""
    group = parser.add_argument_group("flowgraph")
    for dest, flags, kw in _OPTIONS:
        if dest not in skip:
            group.add_argument(*flags, dest=dest, **kw)


def to_argv(args: argparse.Namespace) -> list[str]:
    """Rebuild the flowgraph command line from parsed options (only non-defaults)."""
    argv: list[str] = []
    for dest, flags, kw in _OPTIONS:
        if not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if kw.get("action") == "store_true":
            if value:
                argv.append(flags[0])
        elif value is not None and value != kw.get("default"):
            argv += [flags[0], str(value)]
    return argv
