"""Logging set-up: one line per record, with the component's logger name.

Messages carry what others wrote (label keys and values, container names, servers'
answers), so control characters in them are escaped: a label key with a newline cannot
forge a log line, and a message is cut at MAX_MESSAGE characters: one invalid body or
label is never megabytes of log. Only a traceback, which ebbflow writes itself, spans
several lines.
"""

from __future__ import annotations

import logging
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_MESSAGE = 4096  # characters of one log message; the rest is cut and counted


def escape_control(text: str) -> str:
    """`\\n` → `\\\\n` and the like, so the text stays on one line."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """The text, cut at `limit` characters with how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters not logged)"


def describe_error(err: BaseException) -> str:
    """One line for an error, or for every error of a group (a TaskGroup's)."""
    if isinstance(err, BaseExceptionGroup):
        return "; ".join(describe_error(e) for e in err.exceptions)
    if isinstance(err, TimeoutError):
        return "timed out"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape_control(bounded(record.message))
        return super().formatMessage(record)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        OneLineFormatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"
        )
    )
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
