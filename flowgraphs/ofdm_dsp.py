"""Vectorised OFDM transmitter and receiver DSP used inside the GNU Radio blocks.

numpy only (runs under Debian's numpy 1.24 in the flowgraph and under numpy 2 in the tests).
Whole frames are processed per call: one FFT over all symbols of a frame, one matrix product
for the channel interpolation.

Classes (Sionna-style nouns):

* :class:`FrameModulator` -- payload symbols + PHY header -> baseband samples of one frame.
* :class:`SchmidlCoxDetector` -- timing metric, frame start and fractional CFO.
* :class:`PilotChannelEstimator` -- 2-D Wiener interpolation of the scattered pilots
  (across symbols, then across carriers), Doppler adaptive.
* :class:`StreamReceiver` -- the streaming receiver: detection, CFO, header, FFT, channel
  estimation, soft equalisation, SNR estimation; feed it samples, it returns frames.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from core.phy.ofdm import OfdmConfig, PhyHeader, fft_c64

EQUALISERS = ("ummse", "mmse", "zf")


# ---------------------------------------------------------------------------- helpers
def bessel_j0(x: np.ndarray) -> np.ndarray:
    """Bessel function of the first kind, order 0 (integral form, accurate for |x| < 40).

    Input: array x. Output: J0(x), same shape, float64.
    """
    x = np.asarray(x, dtype=np.float64)
    theta = (np.arange(96) + 0.5) * (np.pi / 96)
    return np.cos(x[..., None] * np.sin(theta)).mean(axis=-1)


_J0_X = np.linspace(0.0, 2.404825557695773, 512)
_J0_Y = bessel_j0(_J0_X)


def doppler_from_correlation(rho: float, lag: float) -> float:
    """Normalised Doppler (per symbol) whose Jakes correlation at ``lag`` symbols is ``rho``."""
    if not np.isfinite(rho) or rho <= 0.0:
        return float(_J0_X[-1] / (2 * np.pi * lag))
    rho = min(rho, 1.0)
    x = np.interp(rho, _J0_Y[::-1], _J0_X[::-1])
    return float(x / (2 * np.pi * lag))


def db(x: float | np.ndarray) -> float | np.ndarray:
    """10*log10 with a floor (no -inf)."""
    return 10.0 * np.log10(np.maximum(x, 1e-30))


# ---------------------------------------------------------------------------- transmitter
class FrameModulator:
    """OFDM modulation of one frame (preamble, PHY header, payload with scattered pilots).

    Parameters
    ----------
    config : OfdmConfig

    Input
    -----
    payload : np.ndarray of complex, (n,)
        Channel symbols (unit average energy expected; sent as they are).
    frame_id, stream : int
        Carried by the PHY header.

    Output
    ------
    samples : np.ndarray of complex64
        ``config.frame_samples(n)`` samples; a burst of unit-energy symbols has unit power.
    """

    def __init__(self, config: OfdmConfig):
        self.cfg = config

    def grid(self, payload: np.ndarray, frame_id: int, stream: int = 0) -> np.ndarray:
        """Resource grid (header + data symbols, n_occupied carriers), complex64."""
        cfg = self.cfg
        payload = np.asarray(payload, dtype=np.complex64).reshape(-1)
        n_h, n_d = cfg.n_header_symbols, cfg.n_data_symbols(payload.size)
        n_sym, n_occ = n_h + n_d, cfg.n_occupied
        flat = cfg.pilot_grid(n_sym).copy()
        hdr = PhyHeader(frame_id=frame_id, n_symbols=payload.size, stream=stream)
        flat[cfg.re_index(n_h, 0)] = cfg.header_symbols(hdr)
        if n_d:
            flat[cfg.payload_index(payload.size)] = payload
        return flat.reshape(n_sym, n_occ)

    def modulate(self, payload: np.ndarray, frame_id: int, stream: int = 0,
                 pad: int = 0) -> np.ndarray:
        """Samples of one frame, followed by ``pad`` zeros."""
        g = self.grid(payload, frame_id, stream)
        pre = self.cfg.preamble
        body = g.shape[0] * self.cfg.symbol_len
        out = np.empty(pre.size + body + pad, np.complex64)
        out[:pre.size] = pre
        self.cfg.to_time(g, out=out[pre.size:pre.size + body])
        if pad:
            out[pre.size + body:] = 0
        return out


# ---------------------------------------------------------------------------- synchronisation
class SchmidlCoxDetector:
    """Schmidl & Cox timing metric M(d) = |P(d)|^2 / R(d)^2 over half-symbol repetition.

    Parameters
    ----------
    config : OfdmConfig
    threshold : float
        Detection threshold on M (the plateau is ~(snr/(1+snr))^2; noise alone ~ 2/N).
    """

    def __init__(self, config: OfdmConfig, threshold: float = 0.10):
        self.cfg = config
        self.L = config.fft_size // 2
        self.threshold = threshold

    def metric(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input: samples r (len >= 2L+1). Output: (M, P) for d = 0 .. len(r) - 2L."""
        L = self.L
        c = np.conj(r[:-L]) * r[L:]
        cs = np.empty(c.size + 1, np.complex128)
        cs[0] = 0
        np.cumsum(c, out=cs[1:])
        P = cs[L:] - cs[:-L]
        e = (r.real.astype(np.float64) ** 2 + r.imag.astype(np.float64) ** 2)
        ce = np.empty(e.size + 1, np.float64)
        ce[0] = 0
        np.cumsum(e, out=ce[1:])
        # energy of both halves (not only the second, as in the paper): M <= 1 always, so a
        # strong burst followed by weak noise cannot fake a plateau
        R = 0.5 * (ce[2 * L:] - ce[:-2 * L])
        M = (P.real ** 2 + P.imag ** 2) / np.maximum(R * R, 1e-30)
        return M, P

    def refine(self, M: np.ndarray, P: np.ndarray) -> tuple[int, float]:
        """Plateau start (argmax of M summed over cp_len+1 lags) and fractional CFO.

        Output: (d_start, cfo) with d_start an index into M, cfo in subcarrier spacings
        (range +-1).
        """
        cp = self.cfg.cp_len
        cm = np.concatenate([[0.0], np.cumsum(M)])
        box = cm[cp + 1:] - cm[:-(cp + 1)]
        d = int(np.argmax(box))
        lo, hi = d + cp // 4, d + 3 * cp // 4 + 1
        p = P[lo:hi].sum()
        return d, float(np.angle(p) / np.pi)


# ---------------------------------------------------------------------------- channel estimation
class PilotChannelEstimator:
    """2-D Wiener (LMMSE) channel interpolation from scattered pilots.

    Across symbols: each pilot carrier's pilots (every ``pilot_period`` symbols) are
    interpolated with a Jakes-correlation Wiener filter over the ``n_taps_time`` nearest
    pilots; the Doppler is estimated per frame from the pilots' correlation. Across carriers:
    a Wiener filter with a uniform delay profile over the cyclic prefix (robust design,
    Edfors et al.). Both filters use the frame's measured noise level.

    Parameters
    ----------
    config : OfdmConfig
    n_taps_time : int
        Pilots per time interpolation.
    min_doppler : float
        Floor of the design Doppler, in cycles per OFDM symbol.
    """

    def __init__(self, config: OfdmConfig, n_taps_time: int = 8, min_doppler: float = 0.001):
        self.cfg = config
        self.n_taps_time = n_taps_time
        self.min_doppler = min_doppler
        k = config.occupied_carriers.astype(np.float64)
        self._k_all = k
        self._k_pilot = k[config.pilot_carrier_index]
        self._freq_cache: dict = {}
        self._time_cache: dict = {}
        # pilot carriers (columns of the pilot-carrier grid) of each symbol phase
        self._phase_cols = [np.flatnonzero(config.pilot_carrier_phase == p)
                            for p in range(config.pilot_period)]

    # -- frequency direction
    def _freq_corr(self, ka: np.ndarray, kb: np.ndarray, t0: float, t1: float) -> np.ndarray:
        dk = ka[:, None] - kb[None, :]
        N = self.cfg.fft_size
        return np.exp(-1j * np.pi * dk * (t0 + t1) / N) * np.sinc(dk * (t1 - t0) / N)

    def default_window(self) -> tuple[float, float]:
        """Delay window (samples, relative to the FFT window start) when nothing is known:
        the whole cyclic prefix."""
        return -2.0, float(self.cfg.cp_len)

    def freq_filter(self, delta: float, window: tuple[float, float] | None = None,
                    header: bool = False) -> np.ndarray:
        """Wiener matrix across carriers for a uniform delay profile over ``window``.

        Parameters
        ----------
        delta : float
            Noise-to-channel power ratio of the inputs.
        window : (t0, t1)
            Delay range of the channel in samples (default: the cyclic prefix).
        header : bool
            Inputs on every occupied carrier (P2 reference) instead of the pilot carriers.

        Output
        ------
        W : np.ndarray complex64, (n_occupied, n_inputs)
        """
        t0, t1 = window or self.default_window()
        key = (round(float(db(max(delta, 1e-6))) * 2) / 2, round(t0), round(t1), header)
        cache = self._freq_cache
        W = cache.get(key)
        if W is None:
            d = 10 ** (key[0] / 10)
            t0, t1 = float(key[1]), float(key[2])
            kp = self._k_all if header else self._k_pilot
            Rpp = self._freq_corr(kp, kp, t0, t1) + d * np.eye(kp.size)
            Rap = self._freq_corr(self._k_all, kp, t0, t1)
            W = np.linalg.solve(Rpp.T, Rap.T).T
            # unit gain on a channel in the middle of the delay window: removes the LMMSE
            # shrinkage, so that Y / H stays unbiased at low SNR
            tc = 0.5 * (t0 + t1)
            ref_p = np.exp(-2j * np.pi * kp * tc / self.cfg.fft_size)
            ref_a = np.exp(-2j * np.pi * self._k_all * tc / self.cfg.fft_size)
            W = (W * (ref_a / (W @ ref_p))[:, None]).astype(np.complex64)
            if len(cache) > 512:
                cache.clear()
            cache[key] = W
        return W

    # -- time direction
    def time_filter(self, n_sym: int, doppler: float, delta: float):
        """Wiener weights across symbols.

        Output
        ------
        taps : np.ndarray int (period, n_sym, K) -- symbol index of each pilot used,
        weights : np.ndarray float (period, n_sym, K),
        noise_gain : float -- mean sum |w|^2 (noise left after the filter, relative),
        matrices : list of np.ndarray complex64, one (n_sym, pilots of phase p) per phase p --
            the same weights as dense interpolation matrices: H_t = matrices[p] @ pilots_p
            (one matrix product per phase instead of a gather of K pilots per symbol).
        """
        P = self.cfg.pilot_period
        counts = [len(range(p, n_sym, P)) for p in range(P)]
        K = max(1, min(self.n_taps_time, min(counts)))
        # designs on a grid (Doppler 20 steps per decade, noise ratio 1 dB) so that frames of
        # the same length reuse them
        key = (n_sym, K, round(20 * np.log10(max(doppler, 1e-6))), round(float(db(max(delta, 1e-6)))))
        hit = self._time_cache.get(key)
        if hit is not None:
            return hit
        doppler = 10 ** (key[2] / 20)
        # Jakes correlation on the integer lag grid (|lag| <= P*K inside any window)
        max_lag = P * (K + 1)
        jt = bessel_j0(2 * np.pi * doppler * np.arange(-max_lag, max_lag + 1))
        lag = P * (np.arange(K)[:, None] - np.arange(K)[None, :])
        Rpp = jt[lag + max_lag] + 10 ** (key[3] / 10) * np.eye(K)
        A = np.linalg.inv(Rpp)
        taps = np.empty((P, n_sym, K), np.int64)
        weights = np.empty((P, n_sym, K), np.float32)
        n = np.arange(n_sym)
        for p in range(P):
            j0 = np.clip(np.round((n - p) / P - (K - 1) / 2).astype(np.int64), 0, counts[p] - K)
            t = p + P * (j0[:, None] + np.arange(K)[None, :])
            taps[p] = t
            w = jt[n[:, None] - t + max_lag] @ A.T
            weights[p] = w / w.sum(axis=1, keepdims=True)  # unbiased on a static channel
        gain = float(np.mean(np.sum(weights.astype(np.float64) ** 2, axis=-1)))
        matrices = []
        for p in range(P):
            m = np.zeros((n_sym, counts[p]), np.complex64)
            m[n[:, None], (taps[p] - p) // P] = weights[p]  # taps of a row are distinct pilots
            matrices.append(m)
        if len(self._time_cache) > 64:
            self._time_cache.clear()
        self._time_cache[key] = (taps, weights, gain, matrices)
        return taps, weights, gain, matrices

    def estimate(self, Yo: np.ndarray, noise_var: float,
                 window: tuple[float, float] | None = None) -> tuple[np.ndarray, dict]:
        """Channel estimate of a whole frame.

        Parameters
        ----------
        Yo : np.ndarray complex, (n_sym, n_occupied)
            Received resource grid (already CFO/CPE corrected).
        noise_var : float
            Noise variance per resource element.
        window : (t0, t1), optional
            Delay window of the channel (samples); default the cyclic prefix.

        Output
        ------
        H : np.ndarray complex64 (n_sym, n_occupied)
        info : dict with ``signal_power`` (pilot-based, noise removed), ``doppler``
            (cycles/symbol), ``residual_phase`` (rad/symbol removed from Yo in place).
        """
        cfg = self.cfg
        n_sym = Yo.shape[0]
        P = cfg.pilot_period
        pv = cfg.pilot_values(n_sym)[:, ::cfg.pilot_shift]
        LS = Yo[:, ::cfg.pilot_shift] * pv  # valid only at pilot positions (BPSK: 1/p = p)
        # per pilot carrier c of phase p, the pilot sequence is LS[p + P*j, c]
        seqs = [LS[p::P][:, cols] for p, cols in enumerate(self._phase_cols)]
        info: dict = {}
        # residual common phase drift from consecutive pilots of each carrier
        z = 0j
        pow_sum, n_pairs = 0.0, 0
        tot_pow, n_pil = 0.0, 0
        for seq in seqs:
            energy = float(np.vdot(seq, seq).real)
            tot_pow += energy
            n_pil += seq.size
            if seq.shape[0] > 1:
                z += complex(np.vdot(seq[:-1], seq[1:]))  # sum of seq[j+1] * conj(seq[j])
                ends = float(np.vdot(seq[0], seq[0]).real + np.vdot(seq[-1], seq[-1]).real)
                pow_sum += energy - ends / 2  # (|seq[j+1]|^2 + |seq[j]|^2) / 2 over the pairs
                n_pairs += seq[1:].size
        sig = max(tot_pow / max(n_pil, 1) - noise_var, 1e-12 * (noise_var + 1e-30))
        info["signal_power"] = sig
        if n_pairs:
            phi = float(np.angle(z)) / P
            rho = abs(z) / max(pow_sum - n_pairs * noise_var, 1e-30)
            doppler = doppler_from_correlation(rho, P)
        else:
            phi, doppler = 0.0, self.min_doppler
        rot = None
        if phi != 0.0:
            rot = np.exp(-1j * phi * np.arange(n_sym)).astype(np.complex64)[:, None]
            Yo *= rot
        info["residual_phase"] = phi
        info["doppler"] = doppler
        design_fd = float(np.clip(1.25 * doppler + 0.5 * self.min_doppler, self.min_doppler,
                                  0.5 / P))
        delta = noise_var / sig
        _, _, ngain, matrices = self.time_filter(n_sym, design_fd, delta)
        Ht = np.empty((n_sym, cfg.pilot_carrier_index.size), np.complex64)
        for p, (cols, seq, m) in enumerate(zip(self._phase_cols, seqs, matrices)):
            if rot is not None:
                seq = seq * rot[p::P]
            Ht[:, cols] = m @ seq
        W = self.freq_filter(delta * ngain, window)
        H = Ht @ W.T
        info["design_doppler"] = design_fd
        return H, info

    def header_reference(self, Y2: np.ndarray, x2: np.ndarray, noise_var: float,
                         window: tuple[float, float] | None = None) -> np.ndarray:
        """Channel on all occupied carriers from the known P2 symbol (frequency Wiener)."""
        ls = Y2 * np.conj(x2)
        sig = max(float(np.mean(np.abs(ls) ** 2)) - noise_var, 1e-3 * noise_var + 1e-30)
        W = self.freq_filter(noise_var / sig, window, header=True)
        return W @ ls.astype(np.complex64)


# ---------------------------------------------------------------------------- receiver
@dataclass
class DemodResult:
    """One received frame, as the receiver reports it."""

    header: PhyHeader
    symbols: np.ndarray
    cqi_db: float
    subcarrier_snr_db: np.ndarray
    noise_var: float
    cfo: float  # subcarrier spacings
    start: int  # absolute sample index of the frame start
    info: dict = field(default_factory=dict)


class StreamReceiver:
    """Streaming OFDM receiver: feed samples, get demodulated frames.

    Parameters
    ----------
    config : OfdmConfig
    equaliser : str
        ``"ummse"`` (default): unbiased per-RE LMMSE, X = Y / H -- the payload keeps its scale,
        noise is Gaussian with variance 1/SNR_k per RE; ``"mmse"``: biased LMMSE
        conj(H) Y / (|H|^2 + N0), minimum mean squared error; ``"zf"``: alias of ``ummse``.
    threshold : float
        Schmidl & Cox detection threshold.
    max_int_cfo : int
        Integer CFO search range, in pairs of subcarriers.

    Input
    -----
    samples : complex64 array, any length, via :meth:`feed`.

    Output
    ------
    list of :class:`DemodResult` completed by these samples.
    """

    SEARCH, FRAME = 0, 1

    def __init__(self, config: OfdmConfig, equaliser: str = "ummse", threshold: float = 0.10,
                 max_int_cfo: int = 2, search_chunk: int = 16384):
        if equaliser not in EQUALISERS:
            raise ValueError(f"equaliser must be one of {EQUALISERS}")
        self.cfg = config
        self.equaliser = equaliser
        self.sync = SchmidlCoxDetector(config, threshold)
        self.chan = PilotChannelEstimator(config)
        self.max_int_cfo = max_int_cfo
        self.search_chunk = search_chunk
        self.buf = np.zeros(1 << 18, np.complex64)
        self.n = 0          # valid samples in buf
        self.offset = 0     # absolute index of buf[0]
        self.pos = 0        # search position (buffer index)
        self.state = self.SEARCH
        self._frame: dict | None = None
        p1, p2 = config.preamble_freq()
        self._p2 = p2
        # time-domain P2 body (as transmitted, unit scale) for the fine-timing matched filter
        p2t = config.preamble[config.symbol_len + config.cp_len:2 * config.symbol_len]
        self._p2_conj = np.conj(p2t).astype(np.complex64)
        self.fine_range = config.cp_len + 16
        self.first_path_fraction = 0.15
        self.spread_fraction = 0.03
        k = config.occupied_carriers
        even = (k % 2 == 0)
        N = config.fft_size
        # the even-carrier bins under each integer CFO hypothesis g = -max .. max (one row each)
        shifts = 2 * np.arange(-max_int_cfo, max_int_cfo + 1)
        self._int_cfo_bins = np.mod(config.occupied_bins[even][None, :] + shifts[:, None], N)
        self._v_conj = np.conj(p2[even] / p1[even]).astype(np.complex64)
        self._ramp_cache: dict = {}
        self._fft_scale = np.float32(1.0 / (np.sqrt(N) * config.tx_scale))
        self.stats = {"detections": 0, "header_failures": 0, "frames": 0, "samples": 0,
                      "triggers": 0, "samples_skipped": 0}
        # triggered mode (feed(x, triggers)): absolute sample indices of the detector's
        # rising edges not handled yet
        self._trig: "collections.deque[int]" = collections.deque()
        # samples kept in front of a trigger: the metric window that ends at the trigger (2L)
        # plus the refinement's look-back (L) and margin
        self.lookback = 4 * self.sync.L + config.cp_len

    def reset(self) -> None:
        """Drop buffered samples and go back to searching (after an internal error)."""
        self.offset += self.n
        self.n = self.pos = 0
        self.state = self.SEARCH
        self._frame = None
        self._trig.clear()

    # -- buffer
    def _append(self, x: np.ndarray) -> None:
        need = self.n + x.size
        if need > self.buf.size:
            self._compact()
            need = self.n + x.size
            if need > self.buf.size:
                nb = np.zeros(max(need, 2 * self.buf.size), np.complex64)
                nb[:self.n] = self.buf[:self.n]
                self.buf = nb
        self.buf[self.n:self.n + x.size] = x
        self.n += x.size
        self.stats["samples"] += x.size

    def _compact(self) -> None:
        keep = self.pos if self.state == self.SEARCH else self._frame["s"]
        keep = max(0, keep - self.sync.L - 2 * self.cfg.symbol_len)
        if keep <= 0:
            return
        self.buf[:self.n - keep] = self.buf[keep:self.n]
        self.n -= keep
        self.offset += keep
        self.pos -= keep
        if self._frame is not None:
            self._frame["s"] -= keep

    def _skip(self, x: np.ndarray) -> None:
        """Triggered mode, nothing to look for: keep only the last ``lookback`` samples."""
        keep = self.lookback
        if x.size >= keep:
            self.offset += self.n + x.size - keep
            self.buf[:keep] = x[x.size - keep:]
            self.n = keep
        else:
            total = self.n + x.size
            drop = max(0, total - keep)
            if drop:
                self.buf[:self.n - drop] = self.buf[drop:self.n]
                self.n -= drop
                self.offset += drop
            self.buf[self.n:self.n + x.size] = x
            self.n += x.size
        self.pos = 0
        self.stats["samples"] += x.size
        self.stats["samples_skipped"] += x.size

    def feed(self, x: np.ndarray, triggers=None) -> list[DemodResult]:
        """Append samples and return the frames they complete.

        Parameters
        ----------
        x : complex64 samples, any length.
        triggers : sequence of int, optional
            Triggered mode: indices into ``x`` where a frame detector that runs outside Python
            (:class:`flowgraphs.blocks.SchmidlCoxTrigger`, stock GNU Radio blocks) saw the
            Schmidl & Cox metric M(d) of the window *ending* at that sample rise above the
            threshold. Then Python never scans the samples: between frames it keeps only a
            short look-back, and each trigger is refined and checked (PHY header CRC) as a
            detection of the built-in search would be. ``None``: the built-in search
            (numpy, every sample between frames).
        """
        x = np.asarray(x, dtype=np.complex64)
        if triggers is not None:
            base = self.offset + self.n
            for t in triggers:
                self._trig.append(base + int(t))
            self.stats["triggers"] += len(triggers)
            if self.state == self.SEARCH and not self._trig:
                self._skip(x)
                return []
        self._append(x)
        search = self._search if triggers is None else self._search_triggered
        out: list[DemodResult] = []
        while True:
            if self.state == self.SEARCH:
                if not search():
                    break
            else:
                f = self._frame
                if self.n < f["s"] + f["n_samples"]:
                    break
                res = self._demod(f)
                out.append(res)
                self.stats["frames"] += 1
                self.pos = f["s"] + f["n_samples"] - self.cfg.cp_len
                self._frame = None
                self.state = self.SEARCH
        if self.state == self.SEARCH and self.pos > (self.buf.size >> 1):
            self._compact()
        return out

    # -- search
    def _search(self) -> bool:
        """Look for a preamble from ``pos``; True when state changed or progress was made."""
        cfg, L, cp, sl = self.cfg, self.sync.L, self.cfg.cp_len, self.cfg.symbol_len
        look = L + 2 * cp + 2 * L + 2  # samples after d0 needed for the refinement
        hdr_need = L + cp + (2 + cfg.n_header_symbols) * sl + cp + 2 * self.fine_range
        while True:
            end = min(self.n, self.pos + self.search_chunk)
            if end - self.pos < 2 * L + 2:
                return False
            M, _ = self.sync.metric(self.buf[self.pos:end])
            hit = np.nonzero(M > self.sync.threshold)[0]
            if hit.size == 0:
                self.pos = end - 2 * L
                if self.n - self.pos < 2 * L + 2 + self.search_chunk // 4:
                    return False
                continue
            d0 = self.pos + int(hit[0])
            if self.n < d0 + max(look, hdr_need):
                self.pos = d0
                return False
            lo = max(0, d0 - L)
            M2, P2 = self.sync.metric(self.buf[lo:d0 + look])
            return self._start_frame(lo, d0, M2, P2)

    def _start_frame(self, lo: int, d0: int, M2: np.ndarray, P2: np.ndarray) -> bool:
        """A detection near ``d0`` (metric M2/P2 from ``lo``): refine the start, decode the
        header and enter FRAME, or skip past a header that fails. Always True (state used)."""
        cfg, L, cp, sl = self.cfg, self.sync.L, self.cfg.cp_len, self.cfg.symbol_len
        d, cfo = self.sync.refine(M2, P2)
        s = lo + d
        self.stats["detections"] += 1
        hdr = self._decode_header(s, cfo)
        if hdr is None:
            self.stats["header_failures"] += 1
            self.pos = max(d0, s) + L + cp
            return True
        header, cfo, noise, s, window = hdr
        n_d = cfg.n_data_symbols(header.n_symbols)
        self._frame = {"s": s, "cfo": cfo, "header": header, "n_data": n_d,
                       "n_samples": (2 + cfg.n_header_symbols + n_d) * sl,
                       "noise_hdr": noise, "window": window}
        self.state = self.FRAME
        return True

    def _search_triggered(self) -> bool:
        """Handle the oldest pending trigger; True when state changed or a trigger was used."""
        cfg, L, cp, sl = self.cfg, self.sync.L, self.cfg.cp_len, self.cfg.symbol_len
        look = L + 2 * cp + 2 * L + 2
        hdr_need = L + cp + (2 + cfg.n_header_symbols) * sl + cp + 2 * self.fine_range
        while self._trig:
            # the detector's metric at sample t covers the window d .. d + 2L - 1, d = t - 2L + 1
            d0 = self._trig[0] - self.offset - (2 * L - 1)
            if d0 < self.pos - 2 * L:
                # a rising edge inside a frame already demodulated (or a rejected detection)
                self._trig.popleft()
                continue
            # an edge on the ramp just before ``pos`` (frames back to back): search from pos,
            # as the built-in search does
            d0 = max(d0, self.pos)
            if self.n < d0 + max(look, hdr_need):
                return False
            self._trig.popleft()
            lo = max(0, d0 - L)
            M2, P2 = self.sync.metric(self.buf[lo:d0 + look])
            if not np.any(M2 > 0.5 * self.sync.threshold):
                continue  # the edge was before pos only: nothing left near the threshold
            return self._start_frame(lo, d0, M2, P2)
        return False

    def _ramp(self, cfo: float) -> np.ndarray:
        r = self._ramp_cache.get(cfo)
        if r is None:
            N = self.cfg.fft_size
            r = np.exp(-2j * np.pi * cfo * np.arange(N) / N).astype(np.complex64)
            if len(self._ramp_cache) > 8:
                self._ramp_cache.clear()
            self._ramp_cache[cfo] = r
        return r

    def _fft_symbols(self, s: int, first: int, count: int, cfo: float) -> np.ndarray:
        """FFT of ``count`` symbols starting at OFDM symbol ``first`` of the frame at buffer
        index ``s`` (P1 = symbol 0), CFO-corrected. Output (count, N) complex64."""
        cfg = self.cfg
        N, sl, cp, b = cfg.fft_size, cfg.symbol_len, cfg.cp_len, cfg.backoff
        a = s + first * sl
        blk = self.buf[a:a + count * sl].reshape(count, sl)[:, cp - b:cp - b + N]
        blk = blk * self._ramp(cfo)[None, :]
        Y = fft_c64(blk, axis=1)
        # phase of each symbol's first sample relative to the frame start
        t0 = (first + np.arange(count)) * sl + cp - b
        ph = np.exp(-2j * np.pi * cfo * t0.astype(np.float64) / N).astype(np.complex64)
        Y *= (ph * self._fft_scale)[:, None]
        return Y

    def _noise(self, Y: np.ndarray) -> float:
        """Noise power per RE from the guard carriers (see ``OfdmConfig.null_bins``)."""
        h, N = self.cfg.n_occupied // 2, self.cfg.fft_size
        g = Y[:, h + 2:N - h - 1]
        return float(np.mean(g.real ** 2 + g.imag ** 2))

    def _decode_header(self, s: int, cfo_frac: float):
        cfg = self.cfg
        H = cfg.n_header_symbols
        Y = self._fft_symbols(s, 0, 2, cfo_frac)
        # integer CFO (Schmidl & Cox): differential correlation P1 -> P2 at even carriers, every
        # hypothesis at once (first maximum wins, as g runs from -max_int_cfo up)
        bins = self._int_cfo_bins
        m = np.abs(np.sum(np.conj(Y[0, bins]) * Y[1, bins] * self._v_conj, axis=1))
        cfo = cfo_frac + 2 * (int(np.argmax(m)) - self.max_int_cfo)
        s, window = self._fine_timing(s, cfo)
        Yh = self._fft_symbols(s, 1, 1 + H, cfo)
        noise = self._noise(Yh)
        Yo = cfg.from_time(Yh)
        h2 = self.chan.header_reference(Yo[0], self._p2, noise, window)
        Yd = Yo[1:]
        # common phase error of each header symbol from its pilots
        pmask = cfg.pilot_mask(H)
        pv = cfg.pilot_values(H)
        cpe = np.sum(np.where(pmask, Yd * np.conj(h2)[None, :] * pv, 0), axis=1)
        Yd = Yd * np.exp(-1j * np.angle(cpe))[:, None].astype(np.complex64)
        soft = (Yd * np.conj(h2)[None, :]).real[~pmask]
        header = cfg.header_decode(soft)
        if header is None:
            return None
        return header, cfo, noise, s, window

    def _fine_timing(self, s: int, cfo: float):
        """Frame start and channel delay window from the cross-correlation with P2.

        Output: (start, (t0, t1)) -- the buffer index of the frame start and the delay range
        of the channel relative to the FFT window start (first path at ``backoff``).

        The Schmidl & Cox plateau gives the start within a few samples at high SNR but within
        +-25 samples at 0 dB; the matched filter over P2 (processing gain N) places the first
        significant channel path exactly, which keeps the channel inside the estimator's
        delay window."""
        cfg = self.cfg
        N, sl, cp = cfg.fft_size, cfg.symbol_len, cfg.cp_len
        T = self.fine_range
        a = s + sl + cp - T
        if a < 0 or a + N + 2 * T > self.n:
            return s, None
        seg = self.buf[a:a + N + 2 * T] * np.exp(
            -2j * np.pi * cfo * np.arange(N + 2 * T) / N).astype(np.complex64)
        win = np.lib.stride_tricks.sliding_window_view(seg, N)
        c = np.abs(win @ self._p2_conj) ** 2
        peak = int(np.argmax(c))
        lo = max(0, peak - cp // 2)
        first = lo + int(np.argmax(c[lo:peak + 1] >= self.first_path_fraction * c[peak]))
        tail = c[first:first + cp]
        strong = np.nonzero(tail >= self.spread_fraction * c[peak])[0]
        spread = int(strong[-1]) if strong.size else 0
        b = cfg.backoff
        window = (b - 3.0, float(min(b + spread + 3, cp + 2)))
        return s + first - T, window

    # -- frame
    def _demod(self, f: dict) -> DemodResult:
        cfg = self.cfg
        H, n_d = cfg.n_header_symbols, f["n_data"]
        n_sym = H + n_d
        Y = self._fft_symbols(f["s"], 2, n_sym, f["cfo"])
        noise = self._noise(Y)
        Yo = cfg.from_time(Y)
        Hest, info = self.chan.estimate(Yo, noise, f["window"])
        info["delay_window"] = f["window"]
        sig = info["signal_power"]
        cqi = float(db(sig / noise))
        sc = (db(np.mean(np.abs(Hest) ** 2, axis=0) / noise)).astype(np.float32)
        n_pay = f["header"].n_symbols
        if n_d:
            didx = cfg.payload_index(n_pay)
            Yd, Hd = Yo.reshape(-1)[didx], Hest.reshape(-1)[didx]
            if self.equaliser == "mmse":
                x = Yd * np.conj(Hd) / (Hd.real ** 2 + Hd.imag ** 2 + np.float32(noise))
            else:
                Hd[Hd == 0] = np.complex64(1e-12)
                x = Yd / Hd
            x = x.astype(np.complex64, copy=False)
        else:
            x = np.zeros(0, np.complex64)
        info["cfo"] = f["cfo"] + info["residual_phase"] * cfg.fft_size / (2 * np.pi * cfg.symbol_len)
        return DemodResult(header=f["header"], symbols=x, cqi_db=cqi, subcarrier_snr_db=sc,
                           noise_var=noise, cfo=info["cfo"], start=self.offset + f["s"], info=info)
