"""The viewer driving the real pipeline: GNU Radio flowgraph, TX and RX as processes.

The window starts the session itself (as ``ntscc-xr demo`` does), shows the decoded frames,
and its controls act on the real link: the SNR control changes the SNR the flowgraph's
receiver measures (CQI from the pilots), and dragging the viewport changes the pose, hence
the ROI, the transmitter encodes with (the RX reports the pose of every frame).
"""
from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt5.QtCore import QPoint, Qt  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402

from tests.helpers import free_base_port  # noqa: E402
from tx.session import Session, SessionConfig  # noqa: E402

pytestmark = pytest.mark.slow


def _gnuradio_available() -> bool:
    import subprocess
    if not shutil.which("/usr/bin/python3"):
        return False
    r = subprocess.run(["/usr/bin/python3", "-c", "import gnuradio.digital"], capture_output=True)
    return r.returncode == 0


def wait_until(cond, timeout: float, step_ms: int = 100) -> bool:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if cond():
            return True
        QTest.qWait(step_ms)
    return bool(cond())


@pytest.mark.skipif(not _gnuradio_available(), reason="GNU Radio (Debian python3) not installed")
def test_viewer_runs_the_real_link(tmp_path, qt_application):
    from gui.viewer import ViewerWindow, apply_style
    apply_style(qt_application)
    cfg = SessionConfig(out=tmp_path, frames=0, resolution="256x128", channel="awgn", snr_db=12.0,
                        base_port=free_base_port(), device="cpu", classical_mode="async")
    session = Session(cfg, log=lambda m: None)
    win = ViewerWindow(session, start_session=True, own_session=True)
    win.resize(1280, 820)
    win.show()
    h = win.history
    try:
        assert wait_until(lambda: len(h.cols["learned"]["frame_id"]) >= 2, timeout=240), \
            f"no frames; problems: {win.health()}"
        assert "streaming" in win.link_label.text(), win.link_label.text()
        for key in ("source", "learned"):
            for panel in (win.erp_panels[key], win.vp_panels[key]):
                assert panel.image is not None and not panel.image.isNull(), key
        psnr = h.array("learned", "psnr")
        assert np.isfinite(psnr).all() and (psnr > 5).all()

        # SNR control -> flowgraph -> the receiver's measured SNR (CQI) follows
        cqi = h.array("learned", "cqi_db")
        assert abs(np.nanmean(cqi) - 12.0) < 2.0
        spin = win.controls.snr_spin
        spin.setFocus()
        spin.selectAll()
        QTest.keyClicks(spin, "4")
        QTest.keyClick(spin, Qt.Key_Return)
        assert wait_until(lambda: any(c.get("snr_db") == 4.0 and r and r.get("ok")
                                      for c, r in win.channel_log), timeout=20), win.channel_log
        n = len(h.cols["learned"]["frame_id"])
        assert wait_until(lambda: len(h.cols["learned"]["frame_id"]) >= n + 2
                          and abs(h.array("learned", "cqi_db")[-1] - 4.0) < 1.5, timeout=180), \
            f"CQI did not follow: {h.array('learned', 'cqi_db')[-5:]}"

        # drag the viewport to yaw 90°: the TX encodes the next frames with that pose / ROI
        panel = win.erp_panels["source"]
        r = panel.image_rect()
        start = QPoint(int(r.x() + 0.5 * r.width()), int(r.y() + 0.5 * r.height()))
        end = QPoint(int(r.x() + 0.75 * r.width()), int(r.y() + 0.5 * r.height()))
        QTest.mousePress(panel, Qt.LeftButton, Qt.NoModifier, start)
        QTest.mouseMove(panel, end)
        QTest.mouseRelease(panel, Qt.LeftButton, Qt.NoModifier, end)
        def tx_used_pose():
            d = win.worker._display.get("learned")
            return d is not None and abs(d.value("yaw") - 90.0) < 3.0
        assert wait_until(tx_used_pose, timeout=180), "the TX never used the dragged pose"
        assert win.worker.counters.malformed == 0
        win.grab().save(str(tmp_path / "viewer_real_link.png"))
    finally:
        win.close()
    assert all(p.poll() is not None for p in session.procs.values())
