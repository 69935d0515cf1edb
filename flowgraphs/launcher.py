"""Run the GNU Radio flowgraph as its own process from the ``.venv`` side.

Debian's GNU Radio 3.10.5 cannot be imported next to numpy 2, so the flowgraph runs under
``/usr/bin/python3`` (``python3 -m flowgraphs.ofdm_link``), and everything else talks to it over
ZeroMQ. That process gets a clean environment: its ``PYTHONPATH`` is a temporary folder that
holds only the packages it imports (``flowgraphs``, ``core.link``, ``core.phy``, ``core.logs``), so nothing of
the venv (numpy 2 beside an installed wheel, the caller's ``PYTHONPATH``) leaks into it;
``NTSCC_GR_PYTHONPATH`` adds folders (e.g. a GNU Radio built from source).

* :class:`FlowgraphProcess` -- start, wait for the ``READY`` line, control requests, clean stop
  (``{"cmd": "stop"}`` -> ``tb.stop(); tb.wait()``; SIGINT, then SIGKILL only as a last resort).
* ``ntscc-xr flowgraph [options]`` -- the flowgraph in the foreground (Ctrl-C stops it cleanly).

No gnuradio, no torch here.
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from flowgraphs.options import add_flowgraph_arguments, to_argv

REPO_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)
GR_PYTHON = os.environ.get("NTSCC_GR_PYTHON", "/usr/bin/python3")
FLOWGRAPH_MODULE = "flowgraphs.ofdm_link"
#: what the flowgraph process imports of this project (torch-free, numpy-1 safe)
GR_PACKAGES = ("flowgraphs", "core/link", "core/phy")


def gr_tree() -> Path:
    """A temporary folder with links to :data:`GR_PACKAGES` alone: the flowgraph's sys.path."""
    tree = Path(tempfile.mkdtemp(prefix="ntscc-gr-"))
    (tree / "core").mkdir()
    for module in ("__init__.py", "logs.py"):
        shutil.copy(REPO_ROOT / "core" / module, tree / "core" / module)
    for pkg in GR_PACKAGES:
        os.symlink(REPO_ROOT / pkg, tree / pkg, target_is_directory=True)
    return tree


def gr_environment(tree: Path) -> dict[str, str]:
    """The environment of the flowgraph process: ours without the Python variables of the venv."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    extra = os.environ.get("NTSCC_GR_PYTHONPATH")
    env["PYTHONPATH"] = str(tree) + (os.pathsep + extra if extra else "")
    env["PYTHONNOUSERSITE"] = "1"  # a numpy 2 in ~/.local would break GNU Radio as well
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


class FlowgraphError(RuntimeError):
    """The flowgraph could not start (message says what to do)."""

    def __init__(self, message: str, returncode: int | None = None, from_child: bool = False):
        super().__init__(message)
        self.returncode = returncode
        self.from_child = from_child  # the flowgraph printed this message itself (ERROR: line)


def _explain(returncode: int | None, stderr_tail: str) -> str:
    if "No module named 'gnuradio'" in stderr_tail or "No module named gnuradio" in stderr_tail:
        return (f"GNU Radio is not installed for {GR_PYTHON} (Debian's python3): run 'make setup' "
                "(it installs the 'gnuradio' Debian package).")
    if "No module named 'zmq'" in stderr_tail:
        return f"pyzmq is missing for {GR_PYTHON}: run 'make setup' (Debian package python3-zmq)."
    errors = [ln[len("ERROR: "):] for ln in stderr_tail.splitlines() if ln.startswith("ERROR: ")]
    if errors:
        return errors[-1]
    return f"the flowgraph exited (code {returncode}) before it was ready:\n{stderr_tail[-3000:]}"


class FlowgraphProcess:
    """The flowgraph as a child process.

    Parameters
    ----------
    argv : list of str
        Flowgraph options (see ``python3 -m flowgraphs.ofdm_link --help``).
    echo : bool
        Copy the child's stdout/stderr to ours (foreground use).
    ready_timeout : float
        Seconds to wait for the READY line.

    After :meth:`start`, ``endpoints`` holds ``in``, ``out``, ``ctrl`` ZMQ addresses.
    """

    def __init__(self, argv: list[str] | None = None, echo: bool = False,
                 ready_timeout: float = 60.0, python: str | None = None):
        self.argv = list(argv or [])
        self.echo = echo
        self.ready_timeout = ready_timeout
        self.python = python or GR_PYTHON
        self.proc: subprocess.Popen | None = None
        self.endpoints: dict = {}
        self.stdout_tail: collections.deque[str] = collections.deque(maxlen=200)
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=400)
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._zmq_ctx = None
        self._tree: Path | None = None

    # ------------------------------------------------------------------ life cycle
    def command(self) -> list[str]:
        return [self.python, "-u", "-m", FLOWGRAPH_MODULE, *self.argv]

    def start(self) -> "FlowgraphProcess":
        if not (os.path.isfile(self.python) or shutil.which(self.python)):
            raise FlowgraphError(f"{self.python} not found: the flowgraph needs Debian's python3 "
                                 "with GNU Radio; run 'make setup'.")
        self._tree = gr_tree()
        self.proc = subprocess.Popen(self.command(), cwd=str(self._tree), env=gr_environment(self._tree),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        for stream, handler in ((self.proc.stdout, self._on_stdout),
                                (self.proc.stderr, self._on_stderr)):
            t = threading.Thread(target=self._pump, args=(stream, handler), daemon=True)
            t.start()
            self._threads.append(t)
        t0 = time.monotonic()
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                for t in self._threads:
                    t.join(timeout=2.0)
                tail = "\n".join(self.stderr_tail)
                shutil.rmtree(self._tree, ignore_errors=True)
                self._tree = None
                raise FlowgraphError(_explain(self.proc.returncode, tail), self.proc.returncode,
                                     from_child="\nERROR: " in "\n" + tail)
            if time.monotonic() - t0 > self.ready_timeout:
                self.stop()
                raise FlowgraphError(f"the flowgraph did not report READY within "
                                     f"{self.ready_timeout:.0f} s:\n" + "\n".join(self.stderr_tail))
        return self

    def _pump(self, stream, handler) -> None:
        for line in iter(stream.readline, ""):
            handler(line.rstrip("\n"))
        stream.close()

    def _on_stdout(self, line: str) -> None:
        if "READY " in line and not self._ready.is_set():
            try:
                self.endpoints = json.loads(line.split("READY ", 1)[1])
                self._ready.set()
            except ValueError:
                pass
        self.stdout_tail.append(line)
        if self.echo:
            print(line, flush=True)

    def _on_stderr(self, line: str) -> None:
        self.stderr_tail.append(line)
        if self.echo:
            print(line, file=sys.stderr, flush=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def control(self, msg: dict, timeout_ms: int = 3000) -> dict:
        """One request on the control socket (:class:`core.link.messages.FlowgraphRequest`);
        its reply as a dict. Raises TimeoutError without an answer, MessageError on a bad
        request or reply."""
        import zmq
        if self._zmq_ctx is None:
            self._zmq_ctx = zmq.Context()
        sock = self._zmq_ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        keys = None
        if "--curve-keys" in self.argv:  # the flowgraph authenticates clients: so do we
            from core.link.security import CurveKeys
            keys = CurveKeys(Path(self.argv[self.argv.index("--curve-keys") + 1]))
        try:
            from core.link.security import connect
            connect(sock, self.endpoints["ctrl"], keys)
            from core.link.messages import FlowgraphReply, FlowgraphRequest
            sock.send(FlowgraphRequest.from_dict(msg).to_bytes())
            if not sock.poll(timeout_ms):
                raise TimeoutError(f"no answer from the flowgraph control socket to {msg}")
            return FlowgraphReply.parse(sock.recv()).as_dict()
        finally:
            sock.close()

    def wait(self, timeout: float | None = None) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """Clean stop: control 'stop' (tb.stop(); tb.wait()), then SIGINT, then SIGKILL."""
        if self.proc is None:
            return None
        if self.proc.poll() is None and self._ready.is_set():
            try:
                self.control({"cmd": "stop"}, timeout_ms=2000)
            except Exception:  # noqa: BLE001 - fall through to signals
                pass
        rc = self.wait(timeout)
        if rc is None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            rc = self.wait(timeout)
        if rc is None and self.proc.poll() is None:
            self.proc.kill()
            rc = self.wait(5.0)
        for t in self._threads:
            t.join(timeout=2.0)
        if self._zmq_ctx is not None:
            self._zmq_ctx.term()
            self._zmq_ctx = None
        if self._tree is not None:
            shutil.rmtree(self._tree, ignore_errors=True)
            self._tree = None
        return rc

    def __enter__(self) -> "FlowgraphProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------- `ntscc-xr flowgraph`
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_flowgraph_arguments(parser)
    parser.epilog = ("Runs python3 -m flowgraphs.ofdm_link under /usr/bin/python3 in the "
                     "foreground; Ctrl-C stops it cleanly. Control socket (base port + 2): JSON "
                     "such as {\"snr_db\": 7} or {\"channel\": \"rayleigh\", \"doppler_hz\": 100}.")


def main(args: argparse.Namespace) -> int:
    fg = FlowgraphProcess(to_argv(args), echo=True)
    try:
        fg.start()
    except FlowgraphError as exc:
        if not exc.from_child:  # otherwise the flowgraph's own ERROR line is already shown
            print(f"ntscc-xr flowgraph: {exc}", file=sys.stderr)
        return exc.returncode or 2
    log.info("flowgraph running: frames in %s, frames out %s, control %s. Ctrl-C to stop.",
             fg.endpoints.get("in"), fg.endpoints.get("out"), fg.endpoints.get("ctrl"))
    try:
        while fg.running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    rc = fg.stop()
    return 0 if rc in (0, None, -signal.SIGINT) else int(rc)
