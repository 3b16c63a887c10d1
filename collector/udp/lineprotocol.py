"""InfluxDB line protocol, to the v2 reference
(https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/).

    measurement[,tag=value...] field=value[,field=value...] [timestamp]

Escaping is per element, and a backslash before anything else is an ordinary character:
measurements escape `,` and space; tag keys, tag values and field keys escape `,`, `=` and
space; string fields escape `"` and `\\`, and may hold any other character, newlines
included (so an entry can span lines). Names and tag values may not hold control
characters (U+0000–U+001F, U+007F); other Unicode, U+2028 included, is data. Floats are
decimal (`1`, `-1.5`, `.5`, `1e9`; no `+`, `_`, NaN or infinity) within float64, integers
`-5i` within int64, unsigned `5u` within uint64, booleans `t T true True TRUE f F false
False FALSE`, timestamps an int64 in the configured precision whose nanoseconds fit int64.
A tag or field key given twice is an error. Lines whose first non-space character is `#`
are comments; blank lines are skipped; a line may end in CRLF.

A line with neither backslash nor quote takes a fast path built on `str.split`; anything
it does not accept as plainly valid goes to the full scanner, so both agree by
construction, and the scanner alone words every error (with its column).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Precision = Literal["ns", "us", "ms", "s"]
NANOSECONDS: dict[str, int] = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
FieldValue = float | int | bool | str

INT64 = (-(2**63), 2**63 - 1)
UINT64_MAX = 2**64 - 1
FLOAT = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\Z")
INT = re.compile(r"-?\d+\Z")
UINT = re.compile(r"\d+\Z")
TIMESTAMP = re.compile(r"-?\d+\Z")
DIGITS = frozenset("0123456789")
NUMBER_START = frozenset("0123456789-.")
TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
FALSE = frozenset({"f", "F", "false", "False", "FALSE"})

MEASUREMENT_ESCAPES = frozenset(", ")
KEY_ESCAPES = frozenset(",= ")  # tag keys, tag values, field keys
STRING_ESCAPES = frozenset('"\\')


@dataclass(slots=True)  # not frozen: made once per line, on the hot path
class LinePoint:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    timestamp: float | None  # Unix seconds


class LineProtocolError(ValueError):
    """What was wrong with one entry, and where (1-based column)."""

    def __init__(self, column: int, message: str, text: str = "") -> None:
        super().__init__(f"column {column}: {message}")
        self.column, self.message, self.text = column, message, text


def parse_line(line: str, precision: Precision = "ns") -> LinePoint:
    """One entry (for tests and single lines); raises LineProtocolError."""
    results = [r for r in parse_lines(line, precision)]
    if len(results) != 1:
        raise LineProtocolError(1, f"expected one entry, found {len(results)}", line)
    result = results[0]
    if isinstance(result, LineProtocolError):
        raise result
    return result


def parse_lines(text: str, precision: Precision = "ns") -> Iterator[LinePoint | LineProtocolError]:
    """Every entry of `text`, in order: a point, or the error that entry alone costs."""
    scale = NANOSECONDS[precision]
    pos, end = 0, len(text)
    while pos < end:
        newline = text.find("\n", pos)
        stop = end if newline < 0 else newline
        line = text[pos:stop]
        if line.endswith("\r"):
            line = line[:-1]
        body = line.lstrip(" ")
        if not body or body.startswith("#"):
            pos = stop + 1
            continue
        if "\\" not in line and '"' not in line:
            point = _plain(line, scale)
            if point is not None:
                yield point
                pos = stop + 1
                continue
        try:
            point, pos = _Scanner(text, pos, scale).entry()
        except _EntryError as failed:
            yield LineProtocolError(failed.column, failed.message, text[pos : failed.resume])
            pos = failed.resume
            continue
        yield point


def _number(raw: str) -> FieldValue | None:
    """A non-string field value, or None when it is not plainly one."""
    if not raw:
        return None
    last = raw[-1]
    if last == "i":
        if INT.match(raw, 0, len(raw) - 1) is None:
            return None
        number = int(raw[:-1])
        return number if INT64[0] <= number <= INT64[1] else None
    if last == "u":
        if UINT.match(raw, 0, len(raw) - 1) is None:
            return None
        unsigned = int(raw[:-1])
        return unsigned if unsigned <= UINT64_MAX else None
    if last in DIGITS and raw[0] in NUMBER_START and "_" not in raw and raw.isascii():
        try:  # the common case, one C call: what float() takes here is what FLOAT allows
            value = float(raw)  # (hex, "1e" and the like raise)
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    if FLOAT.match(raw) is None:
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


def _timestamp(raw: str, scale: int) -> float | None:
    if not (raw.isdigit() and raw.isascii()) and TIMESTAMP.match(raw) is None:
        return None
    nanoseconds = int(raw) * scale
    return nanoseconds / 1e9 if INT64[0] <= nanoseconds <= INT64[1] else None


def _plain(line: str, scale: int) -> LinePoint | None:
    """The fast path: a valid line without escapes or strings, else None (then the
    scanner decides, and words the error)."""
    if not line.isprintable():  # control characters (and some Unicode): the scanner decides
        return None
    head, sep, rest = line.partition(" ")
    if not sep:
        return None
    fields_text, _, time_text = rest.lstrip(" ").partition(" ")
    parts = head.split(",")
    measurement = parts[0]
    if not measurement or not fields_text:
        return None
    try:  # split("=") gives exactly two parts for a plain `key=value`, or dict() refuses
        tags: dict[str, str] = dict(tag.split("=") for tag in parts[1:])
        pairs = [item.split("=") for item in fields_text.split(",")]
        fields: dict[str, FieldValue] = {key: _number(raw) for key, raw in pairs}  # type: ignore[misc]
    except ValueError:
        return None
    if (
        len(tags) != len(parts) - 1  # a key given twice
        or len(fields) != len(pairs)
        or "" in tags
        or "" in tags.values()
        or "" in fields
        or None in fields.values()  # an empty or invalid value
    ):
        return None
    timestamp = None
    if time_text:
        time_text = time_text.strip(" ")
        if time_text:
            timestamp = _timestamp(time_text, scale)
            if timestamp is None:
                return None
    return LinePoint(measurement, tags, fields, timestamp)


class _EntryError(Exception):
    def __init__(self, column: int, message: str, resume: int) -> None:
        self.column, self.message, self.resume = column, message, resume


class _Scanner:
    """The full grammar over `text` from `start`; an entry ends at its newline (one inside
    a string field does not end it)."""

    def __init__(self, text: str, start: int, scale: int) -> None:
        self.text, self.start, self.i, self.scale = text, start, start, scale

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def fail(self, message: str, at: int | None = None) -> _EntryError:
        where = self.i if at is None else at
        newline = self.text.find("\n", where)
        resume = len(self.text) if newline < 0 else newline + 1
        return _EntryError(where - self.start + 1, message, resume)

    def take(self, stops: str, escapes: frozenset[str], controls: bool = False) -> str:
        """Up to an unescaped stop character, or a control character unless `controls`;
        `\\x` for x in `escapes` is x, any other backslash is itself."""
        text, i, out = self.text, self.i, []
        begin = i
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text) and text[i + 1] in escapes:
                out.append(text[begin:i])
                out.append(text[i + 1])
                i += 2
                begin = i
                continue
            if char in stops or (not controls and (char < " " or char == "\x7f")):
                break
            i += 1
        out.append(text[begin:i])
        self.i = i
        return "".join(out)

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.i += 1

    def at_end_of_line(self) -> bool:
        """Consumes the line's end (LF, CRLF or the end of the text) when there is one."""
        char = self.peek()
        if char == "":
            return True
        if char == "\n":
            self.i += 1
            return True
        following = self.text[self.i + 1 : self.i + 2]
        if char == "\r" and following in ("\n", ""):
            self.i += 1 + len(following)
            return True
        return False

    def describe(self) -> str:
        char = self.peek()
        if char in ("", "\n"):
            return "the end of the line"
        if char < " " or char == "\x7f":
            return f"control character U+{ord(char):04X}"
        return repr(char)

    def entry(self) -> tuple[LinePoint, int]:
        self.skip_spaces()
        measurement = self.take(", ", MEASUREMENT_ESCAPES)
        if not measurement:
            raise self.fail(f"expected a measurement, found {self.describe()}")
        tags: dict[str, str] = {}
        while self.peek() == ",":
            self.i += 1
            at = self.i
            key = self.take(",= ", KEY_ESCAPES)
            if not key:
                raise self.fail(f"expected a tag key, found {self.describe()}")
            if self.peek() != "=":
                raise self.fail(f"expected '=' after tag key {key!r}, found {self.describe()}")
            self.i += 1
            tag_value = self.take(",= ", KEY_ESCAPES)
            if not tag_value:
                raise self.fail(f"tag {key!r} has no value (omit the tag instead)")
            if key in tags:
                raise self.fail(f"tag key {key!r} given twice", at)
            tags[key] = tag_value
        if self.peek() != " ":
            raise self.fail(f"expected a space and the fields, found {self.describe()}")
        self.skip_spaces()
        fields: dict[str, FieldValue] = {}
        while True:
            at = self.i
            key = self.take(",= ", KEY_ESCAPES)
            if not key:
                raise self.fail(f"expected a field key, found {self.describe()}")
            if self.peek() != "=":
                raise self.fail(f"expected '=' after field key {key!r}, found {self.describe()}")
            self.i += 1
            value = self.field_value(key)
            if key in fields:
                raise self.fail(f"field key {key!r} given twice", at)
            fields[key] = value
            if self.peek() != ",":
                break
            self.i += 1
        timestamp = None
        if self.peek() == " ":
            self.skip_spaces()
            if not self.at_end_of_line():
                at = self.i
                raw = self.take(" ", frozenset())
                timestamp = _timestamp(raw, self.scale)
                if timestamp is None:
                    raise self.fail(
                        f"timestamp {raw!r} is not an integer whose nanoseconds fit int64",
                        at,
                    )
                self.skip_spaces()
                if not self.at_end_of_line():
                    raise self.fail(f"unexpected {self.describe()} after the timestamp")
                return LinePoint(measurement, tags, fields, timestamp), self.i
            return LinePoint(measurement, tags, fields, None), self.i
        if not self.at_end_of_line():
            raise self.fail(f"unexpected {self.describe()} after field {key!r}")
        return LinePoint(measurement, tags, fields, timestamp), self.i

    def field_value(self, key: str) -> FieldValue:
        at = self.i
        if self.peek() == '"':
            self.i += 1
            return self.string()
        text, i = self.text, self.i
        while i < len(text) and text[i] not in ", \r\n":
            i += 1
        raw, self.i = text[at:i], i
        if not raw:
            raise self.fail(f"field {key!r} has no value", at)
        value = _number(raw)
        if value is None:
            raise self.fail(f"field {key!r}: {_why(raw)}", at)
        return value

    def string(self) -> str:
        """After the opening quote, to the closing one; any character but `"` and `\\`
        stands for itself, newlines included."""
        value = self.take('"', STRING_ESCAPES, controls=True)
        if self.peek() != '"':
            raise self.fail("unterminated string field (no closing quote)", self.start)
        self.i += 1
        return value


def _why(raw: str) -> str:
    """Why a non-string field value is not one, in words."""
    last = raw[-1]
    if last == "i":
        if INT.match(raw, 0, len(raw) - 1) is None:
            return f"{raw!r} is not an integer (digits and an optional '-', then i)"
        return f"{raw!r} is out of int64 range"
    if last == "u":
        if UINT.match(raw, 0, len(raw) - 1) is None:
            return f"{raw!r} is not an unsigned integer (digits, then u)"
        return f"{raw!r} is out of uint64 range"
    if FLOAT.match(raw) is None:
        if raw.lower() in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
            return f"{raw!r}: NaN and infinity are not values"
        return f"{raw!r} is not a number, boolean or string"
    return f"{raw!r} is out of float64 range"
