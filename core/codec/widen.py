"""Carry a trained model's weights over to another rate-level table (e.g. more symbols at the top).

The rate quantiser's table decides how many complex symbols a latent position may get, and the
JSCC's codeword width is twice its largest level. A model trained with a top level of 96 caps
its densest positions there; the training that goes on after a change of table starts from the
trained weights rather than from scratch:

- rate tokens: a level both tables hold keeps its embedding row; a new level takes the row of
  the largest old level below it (the first row if none);
- encoder outputs (JSCC out layer, the encoder's SNR-response output): new symbol j beyond the
  old width repeats old symbol j mod K_old, so the extra symbols carry information at once;
- decoder inputs (JSCC input layer, the decoder's SNR-response input, both response
  networks' first layer): the new symbols' columns start at zero, so the decoder's output does
  not change until training teaches it to use them.

Where the old table's levels are kept and a position's symbol count stays below the old top
level, the adapted model transmits and decodes exactly what the trained one did (tested).
"""
from __future__ import annotations

import logging

import torch

from .config import ModelConfig

logger = logging.getLogger(__name__)

#: state-dict suffixes whose dimension 0 (rows) is the codeword width 2·K
_WIDTH_ROWS = ("out.1.weight", "out.1.bias", "fcn_a.2.weight", "fcn_a.2.bias",
               "fcn_na.2.weight", "fcn_na.2.bias", "prior_out.weight")
#: suffixes whose dimension 1 (columns) is the codeword width
_WIDTH_COLUMNS = ("inp.weight", "fcn_a.0.weight", "fcn_na.0.weight")
#: the linear bypass maps the codeword width out of an encoder (rows) and into a decoder (columns):
#: told apart by the branch's name, since the shapes agree where latent width = codeword width


def _width_axis(key: str) -> int | None:
    """0 if ``key``'s rows are the codeword width, 1 if its columns are, None if neither."""
    if key.endswith("bypass.weight"):
        return 0 if ".enc_" in key else 1
    if key.endswith(_WIDTH_ROWS):
        return 0
    return 1 if key.endswith(_WIDTH_COLUMNS) else None


def symbol_sources(old_max: int, new_max: int) -> torch.Tensor:
    """For each of the new codeword's 2·new_max channels (real parts, then imaginary parts), the
    old channel it starts from: symbol j < old_max is itself, later ones repeat j mod old_max."""
    j = torch.arange(new_max) % old_max
    return torch.cat([j, old_max + j])


def token_sources(old_levels: tuple[int, ...], new_levels: tuple[int, ...]) -> list[int]:
    """For each new rate index, the old index whose rate-token row it starts from."""
    return [max([i for i, old in enumerate(old_levels) if old <= level], default=0) for level in new_levels]


def adapt_rate_levels(state: dict[str, torch.Tensor], old: ModelConfig,
                      new: ModelConfig) -> dict[str, torch.Tensor]:
    """A state dict of a model with ``old``'s rate levels, rewritten for ``new``'s.

    Parameters
    ----------
    state : dict
        ``NTSCCPlus.state_dict()`` of the trained model (any dtype; an EMA state works too).
    old, new : ModelConfig
        Same architecture except ``rate_levels``; ``new``'s top level must not be lower.

    Returns
    -------
    dict
        A state dict that ``NTSCCPlus(new).load_state_dict`` accepts.
    """
    if max(new.rate_levels) < max(old.rate_levels):
        raise ValueError("the new rate-level table tops out lower than the trained one: symbols would be lost")
    k_old, k_new = old.max_symbols, new.max_symbols
    rows = symbol_sources(k_old, k_new)
    tokens = torch.tensor(token_sources(old.rate_levels, new.rate_levels))
    out = dict(state)
    out["quantizer.levels"] = torch.tensor(new.rate_levels, dtype=state["quantizer.levels"].dtype)
    for key, value in state.items():
        if not key.startswith("jscc."):
            continue
        axis = _width_axis(key)
        if key.endswith("rate_token.weight"):
            out[key] = value[tokens].clone()
        elif axis == 0 and value.shape[0] == 2 * k_old:
            out[key] = value[rows].clone()
        elif axis == 1 and value.shape[1] == 2 * k_old:
            cols = value.new_zeros(value.shape[0], 2 * k_new, *value.shape[2:])
            cols[:, :k_old] = value[:, :k_old]  # real parts
            cols[:, k_new:k_new + k_old] = value[:, k_old:]  # imaginary parts
            out[key] = cols
    logger.info("rate levels %s -> %s: codeword width %d -> %d symbols", old.rate_levels,
                new.rate_levels, old.max_symbols, new.max_symbols)
    return out
