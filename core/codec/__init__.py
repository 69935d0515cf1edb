"""Learned NTSCC+ codec: transforms, entropy model, contextual JSCC, response nets, side
information, checkpoints and NTSCC++ online editing (torch)."""
