"""The one exception type of every wire parser (:mod:`core.link.messages`, :mod:`core.link.frame`)."""
from __future__ import annotations


class MessageError(ValueError):
    """A message between processes that is not well formed: the receiving side drops it and
    counts it. Every parse in :mod:`core.link.messages` raises this and nothing else on
    malformed input; :class:`core.link.frame.FrameError` is a subclass."""
