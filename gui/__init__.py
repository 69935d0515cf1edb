"""The live viewer (PyQt5 / pyqtgraph).

The viewer shares the cores with the TX, RX and flowgraph it starts: one BLAS thread, set here
before numpy is first imported (``python -m gui.viewer`` imports this package first).
"""
from core.machine import pace_blas_threads

pace_blas_threads()
