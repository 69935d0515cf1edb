"""OFDM physical-layer configuration shared by the flowgraph and the applications.

Torch-free and numpy-1.24 compatible: the GNU Radio flowgraph (Debian's ``/usr/bin/python3``)
imports it, and so do the applications in ``.venv`` (numpy 2).

The PHY frame on the air, in OFDM symbols of ``fft_size + cp_len`` samples each::

    | P1 | P2 | H_0 .. H_{n_header-1} | D_0 .. D_{n_data-1} |

* ``P1`` -- Schmidl & Cox timing/CFO symbol: a PN sequence on the even carriers only, so its
  useful part is two identical halves (timing metric plateau, fractional CFO from the phase
  of the half-symbol correlation).
* ``P2`` -- a known PN sequence on every occupied carrier: integer CFO (Schmidl & Cox's
  differential metric against P1) and the channel reference for the PHY header.
* ``H_*`` -- the PHY header (frame id, stream, payload length, CRC-16), BPSK with repetition
  over every non-pilot carrier of ``n_header_symbols`` symbols.
* ``D_*`` -- the payload: the application's complex symbols, one per non-pilot resource
  element, unchanged (analog), the last symbol zero-padded.

``H_*`` and ``D_*`` form one resource grid with scattered pilots (DVB-T style): on symbol
``n`` every ``pilot_spacing``-th occupied carrier, starting at carrier
``pilot_shift * (n mod period)``, holds a known BPSK pilot. Each ``pilot_shift``-th carrier
thus carries a pilot every ``period = pilot_spacing / pilot_shift`` symbols, which lets the
receiver interpolate the channel across symbols first and across carriers second.

Every resource element (data, pilot, header, preamble) has unit average energy, so the SNR of
the link is the per-resource-element SNR Es/N0 seen by each payload symbol.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np

try:  # single-precision FFT (numpy < 2 computes every FFT in complex128: ~5x slower here)
    from scipy import fft as _fft_impl

    def fft_c64(a: np.ndarray, axis: int = -1) -> np.ndarray:
        """FFT along ``axis`` in complex64 (scipy.fft if present, else numpy)."""
        return _fft_impl.fft(a, axis=axis)

    def ifft_c64(a: np.ndarray, axis: int = -1) -> np.ndarray:
        """Inverse FFT along ``axis`` in complex64 (scipy.fft if present, else numpy)."""
        return _fft_impl.ifft(a, axis=axis)
except ImportError:  # pragma: no cover - Debian's gnuradio recommends python3-scipy
    def fft_c64(a: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.fft.fft(a, axis=axis).astype(np.complex64, copy=False)

    def ifft_c64(a: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.fft.ifft(a, axis=axis).astype(np.complex64, copy=False)

#: Version of the over-the-air PHY header (4 bits).
PHY_VERSION = 1

_HEADER = struct.Struct("<BI")  # (version << 4 | stream), frame_id ; then n_symbols as 3 bytes
HEADER_PAYLOAD_BYTES = 8
HEADER_BITS = 8 * (HEADER_PAYLOAD_BYTES + 2)  # + CRC-16
MAX_HEADER_SYMBOLS = (1 << 24) - 1


def prbs_bits(n: int, seed: int = 0x1FF, order: int = 9) -> np.ndarray:
    """Pseudo-random binary sequence from a Fibonacci LFSR (PRBS9 or PRBS15).

    Parameters
    ----------
    n : int
        Number of bits.
    seed : int
        Non-zero initial register state (only the low ``order`` bits are used).
    order : int
        9 (x^9 + x^5 + 1) or 15 (x^15 + x^14 + 1).

    Output
    ------
    bits : np.ndarray of uint8, shape (n,)
        The sequence, values 0/1. Deterministic across numpy versions.
    """
    taps = {9: (9, 5), 15: (15, 14)}[order]
    state = seed & ((1 << order) - 1)
    if state == 0:
        raise ValueError("LFSR seed must be non-zero")
    out = np.empty(n, dtype=np.uint8)
    a, b = taps[0] - 1, taps[1] - 1
    for i in range(n):
        bit = ((state >> a) ^ (state >> b)) & 1
        out[i] = state & 1
        state = ((state << 1) | bit) & ((1 << order) - 1)
    return out


def crc16_ccitt(data: bytes, init: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021) of ``data``."""
    crc = init
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


@dataclass(frozen=True)
class PhyHeader:
    """Over-the-air PHY header of one frame.

    Parameters
    ----------
    frame_id : int
        Frame sequence number (uint32).
    n_symbols : int
        Number of payload symbols (< 2**24).
    stream : int
        Stream id (4 bits).
    """

    frame_id: int
    n_symbols: int
    stream: int = 0

    def to_bits(self) -> np.ndarray:
        """Output: ``HEADER_BITS`` bits (uint8 0/1), payload then CRC-16, MSB first."""
        if not 0 <= self.n_symbols <= MAX_HEADER_SYMBOLS:
            raise ValueError(f"n_symbols={self.n_symbols} does not fit the 24-bit PHY header field")
        body = _HEADER.pack(((PHY_VERSION & 0xF) << 4) | (self.stream & 0xF),
                            self.frame_id & 0xFFFFFFFF) + int(self.n_symbols).to_bytes(3, "little")
        raw = body + crc16_ccitt(body).to_bytes(2, "big")
        return np.unpackbits(np.frombuffer(raw, dtype=np.uint8))

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> "PhyHeader | None":
        """Input: ``HEADER_BITS`` hard bits. Output: the header, or None on CRC/version failure."""
        bits = np.asarray(bits, dtype=np.uint8).reshape(-1)
        if bits.size != HEADER_BITS:
            return None
        raw = np.packbits(bits).tobytes()
        body, crc = raw[:HEADER_PAYLOAD_BYTES], int.from_bytes(raw[HEADER_PAYLOAD_BYTES:], "big")
        if crc16_ccitt(body) != crc:
            return None
        vs, frame_id = _HEADER.unpack(body[:_HEADER.size])
        if vs >> 4 != PHY_VERSION:
            return None
        n_symbols = int.from_bytes(body[_HEADER.size:], "little")
        return cls(frame_id=frame_id, n_symbols=n_symbols, stream=vs & 0xF)


@dataclass(frozen=True)
class OfdmConfig:
    """OFDM numerology, carrier allocation, pilot pattern, preamble and PHY header layout.

    Parameters
    ----------
    fft_size : int
        FFT length N (even).
    cp_len : int
        Cyclic prefix length in samples.
    n_occupied : int
        Number of occupied carriers (even): ``-n_occupied/2 .. -1, 1 .. n_occupied/2``; the DC
        carrier and the band edges are null (guard bands).
    pilot_spacing : int
        Distance, in occupied carriers, between pilots on one OFDM symbol.
    pilot_shift : int
        Shift of the pilot comb from one symbol to the next; ``pilot_spacing`` must be a
        multiple of it. Carriers ``0, pilot_shift, 2*pilot_shift, ...`` carry a pilot every
        ``pilot_spacing // pilot_shift`` symbols.
    n_header_symbols : int
        OFDM symbols of the BPSK repetition-coded PHY header.
    pilot_table_period : int
        Pilot values repeat every this many symbols.
    seed : int
        Seed of the PRBS that draws pilots, preamble and header scrambling.
    backoff : int
        Receiver FFT window starts this many samples before the estimated symbol start
        (inside the cyclic prefix), to absorb timing error and keep the channel causal.
    """

    fft_size: int = 256
    cp_len: int = 32
    n_occupied: int = 200
    pilot_spacing: int = 12
    pilot_shift: int = 3
    n_header_symbols: int = 4
    pilot_table_period: int = 64
    seed: int = 0x1A5
    backoff: int = 8

    def __post_init__(self):
        if self.fft_size % 2 or self.n_occupied % 2:
            raise ValueError("fft_size and n_occupied must be even")
        if self.n_occupied >= self.fft_size - 4:
            raise ValueError("leave guard carriers: n_occupied must be < fft_size - 4")
        if self.pilot_spacing % self.pilot_shift:
            raise ValueError("pilot_spacing must be a multiple of pilot_shift")
        if not 0 <= self.backoff < self.cp_len:
            raise ValueError("backoff must be inside the cyclic prefix")
        if self.header_capacity < HEADER_BITS:
            raise ValueError("header symbols too few for the PHY header")

    # ------------------------------------------------------------------ numerology
    @property
    def symbol_len(self) -> int:
        """Samples per OFDM symbol including the cyclic prefix."""
        return self.fft_size + self.cp_len

    @property
    def pilot_period(self) -> int:
        """Symbols between two pilots on the same carrier."""
        return self.pilot_spacing // self.pilot_shift

    @property
    def tx_scale(self) -> float:
        """Time-domain scale so that a burst of unit-energy resource elements has unit power."""
        return float(np.sqrt(self.fft_size / self.n_occupied))

    @cached_property
    def occupied_carriers(self) -> np.ndarray:
        """Output: int array (n_occupied,), centred carrier numbers ascending, DC excluded."""
        h = self.n_occupied // 2
        return np.concatenate([np.arange(-h, 0), np.arange(1, h + 1)]).astype(np.int64)

    @cached_property
    def occupied_bins(self) -> np.ndarray:
        """Output: FFT bin index (0..N-1) of each occupied carrier."""
        return np.mod(self.occupied_carriers, self.fft_size)

    @cached_property
    def null_bins(self) -> np.ndarray:
        """FFT bins of the guard carriers used for noise estimation.

        The carrier adjacent to each band edge and the DC bin with its neighbours are left out,
        so that residual CFO leakage or a radio's DC offset does not bias the noise estimate.
        """
        h = self.n_occupied // 2
        k = np.arange(-self.fft_size // 2, self.fft_size // 2)
        keep = (np.abs(k) > h + 1)
        return np.mod(k[keep], self.fft_size)

    # ------------------------------------------------------------------ pilots
    @cached_property
    def _tables(self) -> dict:
        # per-frame-length tables (masks, index lists) built once per length: the flowgraph
        # modulates and demodulates hundreds of frames a second, mostly of a few lengths
        return {}

    def _table(self, key: tuple, build) -> np.ndarray:
        """``build()`` once per ``key``, kept read-only (callers share it)."""
        t = self._tables.get(key)
        if t is None:
            if len(self._tables) > 256:
                self._tables.clear()
            t = build()
            t.setflags(write=False)
            self._tables[key] = t
        return t

    def pilot_mask(self, n_symbols: int) -> np.ndarray:
        """Scattered pilot positions.

        Parameters
        ----------
        n_symbols : int
            Symbols of the resource grid (header + data).

        Output
        ------
        mask : np.ndarray of bool, shape (n_symbols, n_occupied), read-only
            True where a pilot sits.
        """
        def build() -> np.ndarray:
            i = np.arange(self.n_occupied)
            n = np.arange(n_symbols)[:, None]
            return (i % self.pilot_shift == 0) & ((i // self.pilot_shift) % self.pilot_period
                                                   == n % self.pilot_period)
        return self._table(("pilot_mask", int(n_symbols)), build)

    @cached_property
    def pilot_carrier_index(self) -> np.ndarray:
        """Occupied-carrier indices that ever carry a pilot (every ``pilot_shift``-th)."""
        return np.arange(0, self.n_occupied, self.pilot_shift)

    @cached_property
    def pilot_carrier_phase(self) -> np.ndarray:
        """For each pilot carrier, the symbol phase (n mod period) of its pilots."""
        return (self.pilot_carrier_index // self.pilot_shift) % self.pilot_period

    @cached_property
    def _pilot_table(self) -> np.ndarray:
        bits = prbs_bits(self.pilot_table_period * self.n_occupied, seed=self.seed, order=15)
        return (1.0 - 2.0 * bits.reshape(self.pilot_table_period, self.n_occupied)).astype(np.float32)

    def pilot_values(self, n_symbols: int) -> np.ndarray:
        """Output: float32 (n_symbols, n_occupied), read-only, BPSK pilot value of every
        resource element (only those under :meth:`pilot_mask` are transmitted)."""
        return self._table(("pilot_values", int(n_symbols)),
                           lambda: self._pilot_table[np.arange(n_symbols) % self.pilot_table_period])

    # ------------------------------------------------------------------ capacity
    @cached_property
    def _data_per_phase(self) -> np.ndarray:
        return (~self.pilot_mask(self.pilot_period)).sum(axis=1)

    def data_capacity(self, n_symbols: int, first_symbol: int = 0) -> int:
        """Non-pilot resource elements in ``n_symbols`` grid symbols starting at ``first_symbol``."""
        per = self._data_per_phase
        full, rest = divmod(n_symbols, self.pilot_period)
        total = full * int(per.sum())
        for j in range(rest):
            total += int(per[(first_symbol + full * self.pilot_period + j) % self.pilot_period])
        return total

    @property
    def header_capacity(self) -> int:
        """Resource elements available for the PHY header bits."""
        return self.data_capacity(self.n_header_symbols, 0)

    def n_data_symbols(self, n_payload: int) -> int:
        """OFDM data symbols needed for ``n_payload`` complex payload symbols."""
        if n_payload <= 0:
            return 0
        per4 = int(self._data_per_phase.sum())
        n = max(0, (n_payload // per4 - 1)) * self.pilot_period
        while self.data_capacity(n, self.n_header_symbols) < n_payload:
            n += 1
        return n

    def frame_samples(self, n_payload: int) -> int:
        """Samples of one PHY frame on the air (preamble + header + data)."""
        return (2 + self.n_header_symbols + self.n_data_symbols(n_payload)) * self.symbol_len

    def payload_overhead(self, n_payload: int) -> float:
        """Fraction of the frame's samples that are not payload (pilots, CP, preamble, header,
        guards, padding)."""
        return 1.0 - n_payload / max(1, self.frame_samples(n_payload))

    # ------------------------------------------------------------------ preamble
    @cached_property
    def _p1_freq(self) -> np.ndarray:
        k = self.occupied_carriers
        even = (k % 2 == 0)
        bits = prbs_bits(2 * int(even.sum()), seed=self.seed ^ 0x0F0, order=9).reshape(-1, 2)
        qpsk = ((1 - 2.0 * bits[:, 0]) + 1j * (1 - 2.0 * bits[:, 1])) / np.sqrt(2)
        x = np.zeros(self.n_occupied, np.complex128)
        x[even] = qpsk * np.sqrt(2.0)  # same symbol energy as a full symbol
        return x

    @cached_property
    def _p2_freq(self) -> np.ndarray:
        bits = prbs_bits(2 * self.n_occupied, seed=self.seed ^ 0x133, order=9).reshape(-1, 2)
        return ((1 - 2.0 * bits[:, 0]) + 1j * (1 - 2.0 * bits[:, 1])) / np.sqrt(2)

    def preamble_freq(self) -> tuple[np.ndarray, np.ndarray]:
        """Output: (P1, P2) occupied-carrier values, complex128 (n_occupied,) each.

        P1 is non-zero on even carrier numbers only (Schmidl & Cox), P2 on all.
        """
        return self._p1_freq.copy(), self._p2_freq.copy()

    def to_time(self, grid: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """OFDM modulation of occupied-carrier values.

        Parameters
        ----------
        grid : np.ndarray, shape (n_symbols, n_occupied)
            Resource-element values.

        Output
        ------
        samples : np.ndarray of complex64, shape (n_symbols * symbol_len,)
            IFFT (unitary, scaled by :attr:`tx_scale`) with cyclic prefix, symbols in order;
            written into ``out`` when given (a contiguous complex64 array of that size).
        """
        grid = np.atleast_2d(grid)
        n_sym, N, cp, h = grid.shape[0], self.fft_size, self.cp_len, self.n_occupied // 2
        freq = np.zeros((n_sym, N), np.complex64)
        freq[:, N - h:] = grid[:, :h]        # carriers -h .. -1
        freq[:, 1:h + 1] = grid[:, h:]       # carriers 1 .. h
        t = ifft_c64(freq, axis=1)
        out = (np.empty((n_sym, N + cp), np.complex64) if out is None
               else out.reshape(n_sym, N + cp))
        np.multiply(t, np.float32(np.sqrt(N) * self.tx_scale), out=out[:, cp:])
        out[:, :cp] = out[:, N:]
        return out.reshape(-1)

    def from_time(self, Y: np.ndarray) -> np.ndarray:
        """Occupied carriers of FFT outputs: (n_symbols, N) -> (n_symbols, n_occupied)."""
        h = self.n_occupied // 2
        return np.concatenate([Y[:, self.fft_size - h:], Y[:, 1:h + 1]], axis=1)

    def re_index(self, n_symbols: int, first_symbol: int = 0, pilots: bool = False) -> np.ndarray:
        """Flat indices (row-major into an (n_symbols, n_occupied) grid) of the data REs, or
        of the pilot REs with ``pilots``, for grid symbols ``first_symbol ..``; vectorised over
        the pilot period, for any frame length.

        Output: int64 array, ascending, read-only.
        """
        def build() -> np.ndarray:
            P, n_occ = self.pilot_period, self.n_occupied
            m = self.pilot_mask(P)
            if not pilots:
                m = ~m
            blk = m[(first_symbol + np.arange(P)) % P]
            base = np.flatnonzero(blk)
            q, r = divmod(n_symbols, P)
            idx = (base[None, :] + (P * n_occ) * np.arange(q)[:, None]).reshape(-1)
            if r:
                idx = np.concatenate([idx, np.flatnonzero(blk[:r]) + q * P * n_occ])
            return idx
        return self._table(("re_index", int(n_symbols), int(first_symbol), bool(pilots)), build)

    def payload_index(self, n_payload: int) -> np.ndarray:
        """Flat index into the (header + data symbols, n_occupied) grid of each of ``n_payload``
        payload symbols, in the order the frame carries them (the data REs after the header):
        where the modulator puts them and the receiver takes them.

        Output: int64 array (n_payload,), read-only.
        """
        n_h = self.n_header_symbols
        return self._table(("payload_index", int(n_payload)), lambda: self.re_index(
            self.n_data_symbols(n_payload), n_h)[:n_payload] + n_h * self.n_occupied)

    def payload_carriers(self, n_payload: int) -> np.ndarray:
        """Occupied-carrier index (0..n_occupied-1) of each of ``n_payload`` payload symbols,
        in the order the frame carries them (see :meth:`payload_index`): with the receiver's
        per-carrier SNR this gives each symbol's noise variance.

        Output: int64 array (n_payload,).
        """
        if n_payload <= 0:
            return np.zeros(0, np.int64)
        return self.payload_index(n_payload) % self.n_occupied

    def pilot_grid(self, n_symbols: int) -> np.ndarray:
        """Flat (n_symbols * n_occupied) complex64 grid holding only the pilots, read-only: the
        modulator copies it and fills in header and payload."""
        def build() -> np.ndarray:
            flat = np.zeros(n_symbols * self.n_occupied, np.complex64)
            pidx = self.re_index(n_symbols, 0, pilots=True)
            flat[pidx] = self.pilot_values_at(pidx)
            return flat
        return self._table(("pilot_grid", int(n_symbols)), build)

    def pilot_values_at(self, flat_index: np.ndarray, first_symbol: int = 0) -> np.ndarray:
        """Pilot values at flat grid indices (see :meth:`re_index`), float32."""
        n = flat_index // self.n_occupied + first_symbol
        return self._pilot_table[n % self.pilot_table_period, flat_index % self.n_occupied]

    @cached_property
    def preamble(self) -> np.ndarray:
        """Output: complex64 (2 * symbol_len,), time-domain P1 and P2 with cyclic prefixes."""
        return self.to_time(np.stack([self._p1_freq, self._p2_freq]))

    # ------------------------------------------------------------------ header
    @cached_property
    def header_scrambler(self) -> np.ndarray:
        """Output: float32 (header_capacity,) +-1 scrambling sequence of the header REs."""
        return (1.0 - 2.0 * prbs_bits(self.header_capacity, seed=self.seed ^ 0x055, order=9)
                ).astype(np.float32)

    @cached_property
    def header_bit_index(self) -> np.ndarray:
        """Output: int (header_capacity,), which header bit each header RE repeats (cyclic)."""
        return np.arange(self.header_capacity) % HEADER_BITS

    def header_symbols(self, header: PhyHeader) -> np.ndarray:
        """BPSK with repetition of one PHY header.

        Output
        ------
        values : np.ndarray of float32, shape (header_capacity,)
            +-1 values for the non-pilot REs of the header symbols, in grid order.
        """
        bits = header.to_bits()
        return ((1.0 - 2.0 * bits[self.header_bit_index]) * self.header_scrambler).astype(np.float32)

    def header_decode(self, soft: np.ndarray) -> "PhyHeader | None":
        """Combine the repetitions and check the CRC.

        Parameters
        ----------
        soft : np.ndarray of float, shape (header_capacity,)
            Real soft values of the header REs (positive = bit 0), e.g. Re(conj(H) Y).

        Output
        ------
        header : PhyHeader or None
        """
        s = np.asarray(soft, np.float64).reshape(-1) * self.header_scrambler
        llr = np.bincount(self.header_bit_index, weights=s, minlength=HEADER_BITS)
        return PhyHeader.from_bits((llr < 0).astype(np.uint8))

    def header_repetition(self) -> float:
        """Average number of repetitions of each header bit."""
        return self.header_capacity / HEADER_BITS


DEFAULT_CONFIG = OfdmConfig()


def emulate_snr_estimate(snr_db: float, n_payload: int, rng: np.random.Generator,
                         config: OfdmConfig = DEFAULT_CONFIG) -> float:
    """The receiver's SNR estimate (dB) of one frame of ``n_payload`` symbols sent at
    ``snr_db`` over AWGN, drawn as the OFDM receiver (``flowgraphs.ofdm_dsp``) forms it: noise
    power from the guard carriers of every header and data symbol, signal power from the
    frame's scattered pilots minus that noise (so its error shrinks with the frame length just
    as the PHY's does). For offline evaluations that skip the OFDM waveform but must not hand
    the receiver the true SNR.  Timing/CFO residuals of the real PHY (a further ~+0.05 dB bias
    measured at 10 dB) are not modelled.
    """
    n_sym = config.n_header_symbols + config.n_data_symbols(max(int(n_payload), 1))
    n_pil = int(config.re_index(n_sym, 0, pilots=True).size)
    n_null = n_sym * (config.fft_size - config.n_occupied - 3)   # StreamReceiver._noise
    n0 = 10.0 ** (-float(snr_db) / 10.0)
    noise = n0 * rng.gamma(n_null, 1.0 / n_null)                  # mean |n|^2 over the guards
    w = rng.standard_normal((2, n_pil)) * math.sqrt(n0 / 2)
    pilots = float(np.mean((1.0 + w[0]) ** 2 + w[1] ** 2))       # mean |p + n|^2, |p| = 1
    sig = max(pilots - noise, 1e-12 * (noise + 1e-30))
    return float(10.0 * math.log10(sig / noise))
