"""The classical separation-based chain: image codec + 3GPP 5G NR LDPC + QAM (TS 38.214 MCS).

Modules
-------
``codecs``  source codecs (VVC, HEVC, AV1, JPEG 2000, JPEG) with QP ladders and a bitstream cache
``ldpc``    5G NR LDPC: sionna's code construction + numba encoder and layered min-sum decoder,
            transport blocks with CRC24A/CRC24B segmentation and 38.211 scrambling
``mcs``     the MCS table, QAM mapping / max-log demapping, AWGN, measured BLER curves,
            ``select_mcs``
``chain``   ``ClassicalChain`` (``<codec>+ldpc``) / ``CapacityChain`` (``<codec>+capacity``):
            transmit, the Appendix-A sweep and the live (CQI) policy
``bench_ldpc``  ``python -m core.classical.bench_ldpc`` -> docs/results/ldpc.md

Typical use (evaluation)::

    from core.classical.chain import make_scheme, select_dataset_mcs
    chain = make_scheme("vvc+ldpc", codec_options={"preset": "medium"})
    point = chain.evaluate(rgb, cbr=0.04, snr_db=10.0, trials=2)      # dict: psnr, mcs, ...
    res = chain.transmit(rgb, 0.04, snr_db=7.3, cqi_db=8.0)           # live policy, one frame
    cap = make_scheme("vvc+capacity").evaluate(rgb, 0.04, 10.0)

Live use over the OFDM PHY::

    tx = chain.symbols_for(rgb, cbr, cqi_db=cqi)        # tx.symbols, tx.meta (JSON-able)
    res = chain.receive(y_equalised, noise_var, tx.meta, last_good=prev)

Import the submodules directly; this file imports nothing heavy.
"""
