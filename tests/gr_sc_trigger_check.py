"""Run under Debian's /usr/bin/python3 (GNU Radio) by tests/test_flowgraph_link.py.

GNU Radio issue #6891 (Schmidl & Cox plateau + header_payload_demux loses frames even without
noise): N frames back to back, with and without noise and with exact zeros between frames,
through flowgraphs.blocks.SchmidlCoxTrigger with small work calls (many buffer edges); the
tagged samples go to the receiver's triggered mode. Prints one JSON line: frames found per case.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pmt
from gnuradio import blocks, gr

from core.phy.ofdm import OfdmConfig
from flowgraphs.blocks import TRIGGER_TAG, SchmidlCoxTrigger
from flowgraphs.ofdm_dsp import FrameModulator, StreamReceiver


def run_case(n_frames: int, gap: int, snr_db: float | None, seed: int, max_items: int) -> dict:
    cfg = OfdmConfig()
    mod = FrameModulator(cfg)
    rng = np.random.default_rng(seed)
    amp = 1.0 if snr_db is None else np.sqrt(10 ** (snr_db / 10) * cfg.n_occupied / cfg.fft_size)
    parts = [np.zeros(501, np.complex64)]
    sizes = rng.integers(0, 3000, n_frames)
    for i, n in enumerate(sizes):
        x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)
        parts += [amp * mod.modulate(x, i, 1), np.zeros(gap, np.complex64)]
    parts.append(np.zeros(3000, np.complex64))
    sig = np.concatenate(parts).astype(np.complex64)
    if snr_db is not None:
        sig += ((rng.standard_normal(sig.size) + 1j * rng.standard_normal(sig.size))
                / np.sqrt(2)).astype(np.complex64)
    tb = gr.top_block()
    src = blocks.vector_source_c(sig.tolist(), False)
    trig = SchmidlCoxTrigger(cfg.fft_size, 0.10)
    snk = blocks.vector_sink_c()
    lvl = blocks.vector_sink_s()
    tb.connect(src, trig)
    tb.connect((trig, 0), snk)
    tb.connect((trig, 1), lvl)
    tb.run(max_items)
    y = np.asarray(snk.data(), np.complex64)
    tags = sorted(t.offset for t in snk.tags() if pmt.eq(t.key, TRIGGER_TAG))
    up = np.asarray(lvl.data()) > 0  # what OfdmFrameSink reads: rising edges of output 1
    edges = np.flatnonzero(up[1:] & ~up[:-1]) + 1
    rx = StreamReceiver(cfg)
    out = []
    pos = 0
    while pos < y.size:  # odd chunk sizes: frames and tags cut anywhere
        n = int(rng.integers(100, 5000))
        e = edges[(edges >= pos) & (edges < pos + n)] - pos
        out += rx.feed(y[pos:pos + n], e.tolist())
        pos += n
    ids = [r.header.frame_id for r in out]
    ok = all(r.symbols.size == int(sizes[r.header.frame_id]) for r in out)
    return {"sent": n_frames, "found": len(set(ids)), "in_order": ids == sorted(ids),
            "lengths_ok": ok, "tags": len(tags)}


def main() -> int:
    cases = {
        "no_noise_back_to_back": run_case(60, 0, None, 1, 512),
        "no_noise_zero_gaps": run_case(60, 700, None, 2, 777),
        "snr30_back_to_back": run_case(60, 0, 30.0, 3, 1000),
        "snr10_gaps": run_case(60, 300, 10.0, 4, 4096),
    }
    print(json.dumps(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
