"""Experiments behind the result tables: training, evaluations and the latency bench."""
