"""The classical separation-based chain: image codec + 3GPP 5G NR LDPC + QAM (TS 38.214 MCS).

Modules
-------
``codecs``  source codecs (VVC, HEVC, AV1, JPEG 2000, JPEG) with QP ladders and a bitstream cache
``ldpc``    5G NR LDPC: sionna's encoder (rate matching) + a fast layered min-sum decoder (numba),
            transport-block segmentation with CRC24A/CRC24B and 38.211 scrambling
``mcs``     the MCS table, QAM mapping / max-log demapping, AWGN, measured SNR thresholds
``chain``   ``ClassicalChain`` / ``CapacityChain``: transmit, the Appendix-A and live (CQI) policies

Import the submodules directly (``from core.baseline.chain import ClassicalChain``); this package
file imports nothing heavy so that ``import core.baseline`` stays cheap.
"""
