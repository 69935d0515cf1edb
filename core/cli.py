"""``ntscc-xr`` command line: one entry point, one subcommand per job.

Subcommand modules are imported lazily (only the chosen one), so ``ntscc-xr --help`` is fast
and a subcommand that needs torch does not slow down one that does not. Each module exposes
``add_arguments(parser)`` and ``main(args) -> int``.

``--log-level`` (before or after the subcommand) sets the level of :mod:`logging` for this
process and, through ``$NTSCC_LOG_LEVEL``, for every process it starts (:mod:`core.logs`).
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from core import logs
from core.machine import pace_blas_threads

#: name -> (module, one-line help). Add a subcommand by adding a row here.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "link-test": ("tx.link_test", "send random symbol frames through the real GNU Radio OFDM link and "
                                  "report SNR/CQI/loss/latency"),
    "flowgraph": ("flowgraphs.launcher", "run the GNU Radio OFDM flowgraph alone (ZMQ in/out, simulated "
                                         "channel or USRP)"),
    "train": ("core.experiments.train", "train the NTSCC+ / compatible NTSCC+ model (staged, resumable)"),
    "eval": ("core.experiments.evaluate", "evaluations: rd (rate-distortion, BD-rate), snr (PSNR vs SNR), "
                                          "roi (viewport ROI vs uniform), edit (NTSCC++ T steps vs T=0), "
                                          "fading (per-frame PSNR over a trace)"),
    "bench": ("core.experiments.bench", "encode/decode latency per scheme (paper Table II analogue)"),
    "demo": ("tx.demo", "the live 360-degree demo: viewer window, or --headless report"),
    "tx": ("tx.app", "transmitter process alone"),
    "rx": ("rx.app", "receiver process alone"),
    "keys": ("core.link.security", "create CurveZMQ key pairs for --curve-keys (needed with --allow-remote)"),
}
#: subcommands that share the cores with each other live: one BLAS thread each (core.machine)
LIVE: tuple[str, ...] = ("demo", "tx", "rx", "flowgraph", "link-test")
#: subcommands that open a window instead when a display exists and --headless is not given
WINDOWED: dict[str, str] = {"demo": "gui.viewer"}


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def module_for(args: argparse.Namespace) -> str:
    """The module that runs the parsed command: the viewer or the headless one."""
    if args.command in WINDOWED and not getattr(args, "headless", True) and has_display():
        return WINDOWED[args.command]
    return SUBCOMMANDS[args.command][0]


class Parser(argparse.ArgumentParser):
    """Bad command-line input ends the command with one line (no usage block), before any
    process starts: ``ntscc-xr demo: error: argument --resolution: ...``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

#: subcommands that take --restart-on-failure (core.supervisor: one supervisor per host)
SUPERVISED = ("tx", "rx", "flowgraph")


def _add_log_level(p: argparse.ArgumentParser, default) -> None:
    p.add_argument("--log-level", choices=logs.LEVELS, type=str.lower, default=default,
                   help="diagnostics on stderr from this level on, for this process and the ones it "
                        f"starts (default: ${logs.ENV} or {logs.DEFAULT})")


def selected_subcommand(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option or its value)."""
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--log-level":
            skip = True
        elif not a.startswith("-"):
            return a if a in SUBCOMMANDS else None
    return None


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog="ntscc-xr",
        description="ntscc-xr: NTSCC+ semantic transmission of 360-degree XR content over a "
                    "GNU Radio OFDM link, compared against the classical VVC + 5G LDPC chain.",
        epilog="Run 'ntscc-xr SUBCOMMAND --help' for the options of one subcommand.")
    _add_log_level(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(module).add_arguments(p)
            if name in SUPERVISED:
                from core.supervisor import add_arguments as add_supervisor_arguments
                add_supervisor_arguments(p)
            _add_log_level(p, argparse.SUPPRESS)  # after the subcommand too; keeps the global value
    return parser


def main(argv: list[str] | None = None) -> int:
    # A background job of a non-interactive shell (`nohup make demo &`, a CI script's `&`)
    # starts with SIGINT ignored, and Python keeps it ignored: the TX/RX/flowgraph would then be
    # deaf to Ctrl-C and to the session supervisor's stop. Ctrl-C always means stop here.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = selected_subcommand(argv)
    if selected in LIVE:  # before the subcommand's module (and numpy's BLAS) is loaded
        pace_blas_threads()
    parser = build_parser(selected)
    args = parser.parse_args(argv)
    args.log_level = logs.setup(args.log_level)  # exported: the processes it starts inherit it
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(args, "restart_on_failure", False):
        from core.supervisor import supervise
        return supervise(argv, args.restart_delay)
    module = importlib.import_module(module_for(args))
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
