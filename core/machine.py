"""What machine a measurement ran on: benchmarks record it beside their figures.

The project's 2-core machine is not always the same CPU from one day to the next (an Intel Xeon
without native bf16 on some days, an AMD EPYC with ``avx512_bf16`` on others), and the speed of
every stage depends on which, so every speed table names the CPU and its bf16 support.
"""
from __future__ import annotations

import os
import platform

#: cpuinfo flags that change which fast path the learned codec takes (core.codec.fast).
SPEED_FLAGS: tuple[str, ...] = ("avx512_bf16", "amx_bf16", "avx512_vnni")


#: Environment of the live processes (TX, RX, flowgraph, viewer), which share the cores and pace
#: their own threads (torch ``--threads``). numpy's and scipy's OpenBLAS would otherwise start one
#: worker per core at their first matrix product and keep them spinning between calls: on the
#: 2-core AMD EPYC its ``blas_thread_server`` took 11-13 % of the TX's and the RX's samples, and
#: one thread lifted the learned chain alone from 10.1-10.9 to 13.8-13.9 fps
#: (docs/results/speed.md, section 7).
LIVE_PROCESS_ENV: dict[str, str] = {"OPENBLAS_NUM_THREADS": "1"}


def pace_blas_threads(env: dict | None = None) -> None:
    """Give ``env`` (default: this process's ``os.environ``, before numpy loads its BLAS) the
    live processes' thread settings, unless the user set them."""
    env = os.environ if env is None else env
    for key, value in LIVE_PROCESS_ENV.items():
        env.setdefault(key, value)


def _cpuinfo(key: str) -> str | None:
    """The value of the first ``key`` line of /proc/cpuinfo (None where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    return _cpuinfo("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is not readable)."""
    return set((_cpuinfo("flags") or "").split())


def cpu_description() -> str:
    """One line for a report, e.g. ``AMD EPYC, 2 cores, avx512_bf16 avx512_vnni``."""
    flags = cpu_flags()
    speed = " ".join(f for f in SPEED_FLAGS if f in flags) or "no native bf16 / VNNI"
    return f"{cpu_model()}, {os.cpu_count()} cores, {speed}"
