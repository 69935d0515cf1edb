"""Learned NTSCC+ codec: transforms, entropy model, contextual JSCC, response nets, side
information, checkpoints and NTSCC++ online editing (torch)."""

#: --fast / --no-fast help shared by tx, rx and bench (here: torch-free, so --help stays fast).
FAST_HELP = ("learned codec inference fast path (default on): bf16 autocast of g_a, g_s and the "
             "JSCC where the device computes bf16 natively (CUDA; CPUs with AVX-512 BF16 or AMX); "
             "elsewhere float32 with g_a on ONNX Runtime (about 12 %% off the encode); entropy model "
             "and rate map always float32. --no-fast: "
             "the plain float32 PyTorch path")
