"""Where an output's samples wait, as Telegraf keeps them: one buffer, memory first and
the disk spool behind it, in separate files (`memory`, `disk`)."""

from .disk import LEGACY_SPOOL_FILE, SPOOL_FILE, Spool, decode, encode, frame, unframe
from .memory import MemoryBuffer

__all__ = [
    "LEGACY_SPOOL_FILE",
    "SPOOL_FILE",
    "MemoryBuffer",
    "Spool",
    "decode",
    "encode",
    "frame",
    "unframe",
]
