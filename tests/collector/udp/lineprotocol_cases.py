"""Line-protocol conformance cases, written from the InfluxDB v2 line-protocol reference.

Each case is a text (one datagram; `{m}` is the case's own measurement, so no two cases
share a series) and what each entry in it must give: a point with the exact measurement,
tags, fields and timestamp, or a rejection whose reason contains the given words. The unit
suite parses them; the integration suite sends them over UDP into `ebbflow run` and reads
them back from /metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FieldValue = float | int | bool | str


@dataclass(frozen=True)
class Point:
    fields: dict[str, FieldValue]
    tags: dict[str, str] = field(default_factory=dict)
    timestamp: float | None = None
    measurement: str = "{m}"


@dataclass(frozen=True)
class Rejected:
    reason: str


Outcome = Point | Rejected


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    outcomes: tuple[Outcome, ...]
    precision: str = "ns"


def ok(fields: dict[str, FieldValue], tags: dict[str, str] | None = None, **kw: object) -> Point:
    return Point(fields, tags or {}, **kw)  # type: ignore[arg-type]


def bad(reason: str) -> Rejected:
    return Rejected(reason)


V1 = {"v": 1.0}

_RAW: list[tuple[str, str, tuple[Outcome, ...]] | tuple[str, str, tuple[Outcome, ...], str]] = [
    # -- the basic shapes --------------------------------------------------------------
    ("minimal", "{m} v=1", (ok(V1),)),
    (
        "tags and timestamp",
        "{m},host=a,region=eu v=1 1700000000000000000",
        (ok(V1, {"host": "a", "region": "eu"}, timestamp=1_700_000_000.0),),
    ),
    ("several fields", '{m} a=1,b=2i,c=t,d="x"', (ok({"a": 1.0, "b": 2, "c": True, "d": "x"}),)),
    ("no tags, timestamp", "{m} v=1 5", (ok(V1, timestamp=5e-9),)),
    ("measurement only", "{m}", (bad("expected a space and the fields"),)),
    ("measurement and space only", "{m} ", (bad("expected a field key"),)),
    ("tag but no field", "{m},t=a", (bad("expected a space and the fields"),)),
    ("empty line between entries", "{m} v=1\n\n{m} v=2", (ok(V1), ok({"v": 2.0}))),
    ("two entries", "{m} v=1\n{m},t=b v=2", (ok(V1), ok({"v": 2.0}, {"t": "b"}))),
    ("trailing newline", "{m} v=1\n", (ok(V1),)),
    ("CRLF line ends", "{m} v=1\r\n{m},t=x v=2\r\n", (ok(V1), ok({"v": 2.0}, {"t": "x"}))),
    ("CR at the very end", "{m} v=1\r", (ok(V1),)),
    ("a lone CR inside", "{m} v=1\r{m} v=2", (bad("unexpected control character U+000D"),)),
    ("leading spaces", "   {m} v=1", (ok(V1),)),
    ("several spaces before fields", "{m}   v=1", (ok(V1),)),
    ("several spaces before timestamp", "{m} v=1    7", (ok(V1, timestamp=7e-9),)),
    ("trailing spaces", "{m} v=1 7   ", (ok(V1, timestamp=7e-9),)),
    ("trailing space without timestamp", "{m} v=1 ", (ok(V1),)),
    ("text after timestamp", "{m} v=1 7 8", (bad("after the timestamp"),)),
    ("tab is not a separator", "{m}\tv=1", (bad("control character U+0009"),)),
    # -- comments and blank lines ------------------------------------------------------
    ("comment line", "# a comment\n{m} v=1", (ok(V1),)),
    ("comment after spaces", "   # indented comment\n{m} v=1", (ok(V1),)),
    ("comment only", "# nothing else", ()),
    ("blank lines only", "\n\n  \n", ()),
    ("comment between entries", "{m} v=1\n# between\n{m} v=2", (ok(V1), ok({"v": 2.0}))),
    ("hash inside a tag value is data", "{m},t=#x v=1", (ok(V1, {"t": "#x"}),)),
    ("hash as measurement start in the middle", "{m} v=1\n#{m} v=2", (ok(V1),)),
    # -- measurement -------------------------------------------------------------------
    ("escaped space in measurement", r"{m}\ x v=1", (ok(V1, measurement="{m} x"),)),
    ("escaped comma in measurement", r"{m}\,x v=1", (ok(V1, measurement="{m},x"),)),
    ("equals in measurement is data", "{m}=x v=1", (ok(V1, measurement="{m}=x"),)),
    (
        "escaped equals in measurement keeps the backslash",
        r"{m}\=x v=1",
        (ok(V1, measurement="{m}\\=x"),),
    ),
    ("quote in measurement is data", '{m}"q v=1', (ok(V1, measurement='{m}"q'),)),
    (
        "escaped space swallows the separator",
        "{m}\\ v=1",
        (bad("expected a space and the fields"),),
    ),
    ("backslash before a letter stays", r"{m}\d v=1", (ok(V1, measurement="{m}\\d"),)),
    ("double backslash stays double", r"{m}\\x v=1", (ok(V1, measurement="{m}\\\\x"),)),
    ("double backslash then escaped space", r"{m}\\\ x v=1", (ok(V1, measurement="{m}\\\\ x"),)),
    ("unicode measurement", "{m}é v=1", (ok(V1, measurement="{m}é"),)),
    ("emoji measurement", "{m}📈 v=1", (ok(V1, measurement="{m}📈"),)),
    ("control char in measurement", "{m}\x01 v=1", (bad("control character U+0001"),)),
    ("DEL in measurement", "{m}\x7f v=1", (bad("control character U+007F"),)),
    ("empty measurement", ",t=a v=1", (bad("expected a measurement"),)),
    ("measurement starting with space is indentation", " {m} v=1", (ok(V1),)),
    # -- tags ---------------------------------------------------------------------------
    ("escaped equals in tag key", r"{m},ho\=st=localhost v=1", (ok(V1, {"ho=st": "localhost"}),)),
    ("escaped comma in tag key", r"{m},a\,b=c v=1", (ok(V1, {"a,b": "c"}),)),
    ("escaped space in tag key", r"{m},a\ b=c v=1", (ok(V1, {"a b": "c"}),)),
    ("escaped equals in tag value", r"{m},t=a\=b v=1", (ok(V1, {"t": "a=b"}),)),
    ("escaped comma in tag value", r"{m},t=a\,b v=1", (ok(V1, {"t": "a,b"}),)),
    ("escaped space in tag value", r"{m},t=a\ b v=1", (ok(V1, {"t": "a b"}),)),
    ("unescaped equals in tag value", "{m},t=a=b v=1", (bad("expected a space and the fields"),)),
    (
        "backslash that escapes nothing in tag value",
        r"{m},path=C:\temp v=1",
        (ok(V1, {"path": "C:\\temp"}),),
    ),
    ("double backslash in tag value", r"{m},t=a\\b v=1", (ok(V1, {"t": "a\\\\b"}),)),
    (
        "double backslash then escaped space in tag",
        r"{m},t=a\\\ b v=1",
        (ok(V1, {"t": "a\\\\ b"}),),
    ),
    ("backslash before a quote in tag value", r"{m},t=a\"b v=1", (ok(V1, {"t": 'a\\"b'}),)),
    ("quotes in tag value are data", '{m},t="a" v=1', (ok(V1, {"t": '"a"'}),)),
    ("url with a pipe in a tag", "{m},url=http://x/a|b v=1", (ok(V1, {"url": "http://x/a|b"}),)),
    ("url with a colon and pipe in a tag", "{m},u=a:1|c v=1", (ok(V1, {"u": "a:1|c"}),)),
    ("unicode tag value", "{m},city=Zürich v=1", (ok(V1, {"city": "Zürich"}),)),
    ("line separator U+2028 is data", "{m},t=a\u2028b v=1", (ok(V1, {"t": "a\u2028b"}),)),
    ("paragraph separator U+2029 is data", "{m},t=a\u2029b v=1", (ok(V1, {"t": "a\u2029b"}),)),
    ("next line U+0085 is data", "{m},t=a\u0085b v=1", (ok(V1, {"t": "a\u0085b"}),)),
    (
        "file separator is a control character",
        "{m},t=a\x1cb v=1",
        (bad("control character U+001C"),),
    ),
    ("vertical tab is a control character", "{m},t=a\vb v=1", (bad("control character U+000B"),)),
    ("NUL in a tag value", "{m},t=a\x00b v=1", (bad("control character U+0000"),)),
    ("empty tag value", "{m},t= v=1", (bad("has no value"),)),
    ("empty tag key", "{m},=a v=1", (bad("expected a tag key"),)),
    ("tag without equals", "{m},t v=1", (bad("expected '=' after tag key 't'"),)),
    ("trailing comma after tags", "{m},t=a, v=1", (bad("expected a tag key"),)),
    ("comma then space after measurement", "{m}, v=1", (bad("expected a tag key"),)),
    ("duplicate tag keys", "{m},t=a,t=b v=1", (bad("tag key 't' given twice"),)),
    ("tags out of order are fine", "{m},b=2,a=1 v=1", (ok(V1, {"a": "1", "b": "2"}),)),
    (
        "many tags",
        "{m},a=1,b=2,c=3,d=4,e=5 v=1",
        (ok(V1, {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}),),
    ),
    ("tag value that looks like a number", "{m},t=1.5 v=1", (ok(V1, {"t": "1.5"}),)),
    ("tag value with hyphen and dot", "{m},host=web-1.eu v=1", (ok(V1, {"host": "web-1.eu"}),)),
    ("space before tags", "{m} ,t=a v=1", (bad("expected a field key"),)),
    # -- field keys ---------------------------------------------------------------------
    ("escaped space in field key", r"{m} a\ b=1", (ok({"a b": 1.0}),)),
    ("escaped comma in field key", r"{m} a\,b=1", (ok({"a,b": 1.0}),)),
    ("escaped equals in field key", r"{m} a\=b=1", (ok({"a=b": 1.0}),)),
    ("quote in field key is part of it", '{m} "q"=1', (ok({'"q"': 1.0}),)),
    ("unicode field key", "{m} température=1", (ok({"température": 1.0}),)),
    ("empty field key", "{m} =1", (bad("expected a field key"),)),
    ("field without equals", "{m} v", (bad("expected '=' after field key 'v'"),)),
    ("field without value", "{m} v=", (bad("field 'v' has no value"),)),
    ("field value then comma and nothing", "{m} v=1,", (bad("expected a field key"),)),
    ("duplicate field keys", "{m} v=1,v=2", (bad("field key 'v' given twice"),)),
    ("control char in field key", "{m} v\x02=1", (bad("control character U+0002"),)),
    ("space inside fields", "{m} a=1, b=2", (bad("expected a field key"),)),
    # -- string fields -------------------------------------------------------------------
    ("string field", '{m} s="hello"', (ok({"s": "hello"}),)),
    ("empty string", '{m} s=""', (ok({"s": ""}),)),
    ("string with comma, space, equals", '{m} s="a, b=c d"', (ok({"s": "a, b=c d"}),)),
    ("string with an escaped quote", r'{m} s="a\"b"', (ok({"s": 'a"b'}),)),
    ("string with an escaped backslash", r'{m} s="a\\b"', (ok({"s": "a\\b"}),)),
    ("string with a lone backslash", r'{m} s="C:\temp"', (ok({"s": "C:\\temp"}),)),
    ("string ending in an escaped backslash", r'{m} s="a\\"', (ok({"s": "a\\"}),)),
    ("string with backslash-n stays two chars", r'{m} s="a\nb"', (ok({"s": "a\\nb"}),)),
    ("string with a newline", '{m} s="a\nb",v=1', (ok({"s": "a\nb", "v": 1.0}),)),
    (
        "string with a newline then next entry",
        '{m} s="a\nb"\n{m} v=2',
        (ok({"s": "a\nb"}), ok({"v": 2.0})),
    ),
    ("string with CRLF inside", '{m} s="a\r\nb"', (ok({"s": "a\r\nb"}),)),
    ("string with a tab", '{m} s="a\tb"', (ok({"s": "a\tb"}),)),
    ("string with a control char", '{m} s="a\x01b"', (ok({"s": "a\x01b"}),)),
    ("string with unicode", '{m} s="naïve ☃"', (ok({"s": "naïve ☃"}),)),
    ("string with a hash", '{m} s="#not a comment"', (ok({"s": "#not a comment"}),)),
    ("string then a number", '{m} s="x",v=2i', (ok({"s": "x", "v": 2}),)),
    ("string then timestamp", '{m} s="x" 9', (ok({"s": "x"}, timestamp=9e-9),)),
    ("unterminated string", '{m} s="abc', (bad("unterminated string"),)),
    (
        "unterminated string leaves the next line",
        '{m} s="abc\n{m} v=3',
        (bad("unterminated string"), ok({"v": 3.0})),
    ),
    ("string without opening quote", '{m} s=abc"', (bad("is not a number, boolean or string"),)),
    ("text right after a string", '{m} s="a"b', (bad("unexpected 'b' after field 's'"),)),
    ("single quotes are not strings", "{m} s='a'", (bad("is not a number, boolean or string"),)),
    ("escaped quote at the end stays open", r'{m} s="a\"', (bad("unterminated string"),)),
    # -- floats --------------------------------------------------------------------------
    ("integer-looking float", "{m} v=42", (ok({"v": 42.0}),)),
    ("negative float", "{m} v=-1.5", (ok({"v": -1.5}),)),
    ("float with trailing dot", "{m} v=1.", (ok({"v": 1.0}),)),
    ("float with leading dot", "{m} v=.5", (ok({"v": 0.5}),)),
    ("negative leading dot", "{m} v=-.5", (ok({"v": -0.5}),)),
    ("exponent", "{m} v=1e3", (ok({"v": 1000.0}),)),
    ("capital exponent with sign", "{m} v=2.5E-3", (ok({"v": 0.0025}),)),
    ("positive exponent sign", "{m} v=1e+2", (ok({"v": 100.0}),)),
    ("zero", "{m} v=0", (ok({"v": 0.0}),)),
    ("negative zero", "{m} v=-0", (ok({"v": -0.0}),)),
    ("leading zeros", "{m} v=007", (ok({"v": 7.0}),)),
    ("largest float", "{m} v=1.7976931348623157e308", (ok({"v": 1.7976931348623157e308}),)),
    ("tiny float", "{m} v=5e-324", (ok({"v": 5e-324}),)),
    ("float overflow", "{m} v=1e400", (bad("out of float64 range"),)),
    ("400 digits", "{m} v=" + "1" * 400, (bad("out of float64 range"),)),
    ("NaN", "{m} v=NaN", (bad("NaN and infinity are not values"),)),
    ("nan", "{m} v=nan", (bad("NaN and infinity are not values"),)),
    ("inf", "{m} v=inf", (bad("NaN and infinity are not values"),)),
    ("-Infinity", "{m} v=-Infinity", (bad("NaN and infinity are not values"),)),
    ("plus sign", "{m} v=+1", (bad("is not a number"),)),
    ("underscore digits", "{m} v=1_000", (bad("is not a number"),)),
    ("hex", "{m} v=0x10", (bad("is not a number"),)),
    ("two dots", "{m} v=1.2.3", (bad("is not a number"),)),
    ("bare dot", "{m} v=.", (bad("is not a number"),)),
    ("bare minus", "{m} v=-", (bad("is not a number"),)),
    ("exponent without digits", "{m} v=1e", (bad("is not a number"),)),
    ("comma decimal", "{m} v=1,5", (bad("expected '=' after field key '5'"),)),
    # -- integers -------------------------------------------------------------------------
    ("integer", "{m} v=42i", (ok({"v": 42}),)),
    ("negative integer", "{m} v=-42i", (ok({"v": -42}),)),
    ("zero integer", "{m} v=0i", (ok({"v": 0}),)),
    ("int64 max", "{m} v=9223372036854775807i", (ok({"v": 9223372036854775807}),)),
    ("int64 min", "{m} v=-9223372036854775808i", (ok({"v": -9223372036854775808}),)),
    ("int64 overflow", "{m} v=9223372036854775808i", (bad("out of int64 range"),)),
    ("int64 underflow", "{m} v=-9223372036854775809i", (bad("out of int64 range"),)),
    ("integer with plus", "{m} v=+5i", (bad("is not an integer"),)),
    ("integer with a fraction", "{m} v=1.5i", (bad("is not an integer"),)),
    ("integer with exponent", "{m} v=1e3i", (bad("is not an integer"),)),
    ("integer with underscore", "{m} v=1_0i", (bad("is not an integer"),)),
    ("capital I is not an integer", "{m} v=5I", (bad("is not a number"),)),
    ("bare i", "{m} v=i", (bad("is not an integer"),)),
    ("400-digit integer", "{m} v=" + "1" * 400 + "i", (bad("out of int64 range"),)),
    # -- unsigned -------------------------------------------------------------------------
    ("unsigned", "{m} v=42u", (ok({"v": 42}),)),
    ("unsigned zero", "{m} v=0u", (ok({"v": 0}),)),
    ("uint64 max", "{m} v=18446744073709551615u", (ok({"v": 18446744073709551615}),)),
    ("uint64 overflow", "{m} v=18446744073709551616u", (bad("out of uint64 range"),)),
    ("negative unsigned", "{m} v=-123u", (bad("is not an unsigned integer"),)),
    ("unsigned with a fraction", "{m} v=1.5u", (bad("is not an unsigned integer"),)),
    ("capital U", "{m} v=5U", (bad("is not a number"),)),
    # -- booleans -------------------------------------------------------------------------
    ("t", "{m} v=t", (ok({"v": True}),)),
    ("T", "{m} v=T", (ok({"v": True}),)),
    ("true", "{m} v=true", (ok({"v": True}),)),
    ("True", "{m} v=True", (ok({"v": True}),)),
    ("TRUE", "{m} v=TRUE", (ok({"v": True}),)),
    ("f", "{m} v=f", (ok({"v": False}),)),
    ("F", "{m} v=F", (ok({"v": False}),)),
    ("false", "{m} v=false", (ok({"v": False}),)),
    ("False", "{m} v=False", (ok({"v": False}),)),
    ("FALSE", "{m} v=FALSE", (ok({"v": False}),)),
    ("tRue", "{m} v=tRue", (bad("is not a number, boolean or string"),)),
    ("yes", "{m} v=yes", (bad("is not a number, boolean or string"),)),
    ("fals", "{m} v=fals", (bad("is not a number, boolean or string"),)),
    ("quoted true is a string", '{m} v="true"', (ok({"v": "true"}),)),
    # -- timestamps -----------------------------------------------------------------------
    ("nanoseconds", "{m} v=1 1700000000123456789", (ok(V1, timestamp=1700000000.1234567),)),
    ("negative timestamp", "{m} v=1 -1000000000", (ok(V1, timestamp=-1.0),)),
    ("zero timestamp", "{m} v=1 0", (ok(V1, timestamp=0.0),)),
    ("int64 max timestamp", "{m} v=1 9223372036854775807", (ok(V1, timestamp=9223372036.854776),)),
    ("timestamp overflow", "{m} v=1 9223372036854775808", (bad("nanoseconds fit int64"),)),
    ("20-digit timestamp", "{m} v=1 99999999999999999999", (bad("nanoseconds fit int64"),)),
    ("float timestamp", "{m} v=1 1.5", (bad("is not an integer"),)),
    ("timestamp with letters", "{m} v=1 12ab", (bad("is not an integer"),)),
    ("timestamp with plus", "{m} v=1 +5", (bad("is not an integer"),)),
    ("precision s", "{m} v=1 1700000000", (ok(V1, timestamp=1_700_000_000.0),), "s"),
    ("precision ms", "{m} v=1 1700000000123", (ok(V1, timestamp=1_700_000_000.123),), "ms"),
    ("precision us", "{m} v=1 1700000000123456", (ok(V1, timestamp=1_700_000_000.123456),), "us"),
    ("precision ns", "{m} v=1 1700000000123456789", (ok(V1, timestamp=1700000000.1234567),), "ns"),
    ("precision s overflow", "{m} v=1 9300000000", (bad("nanoseconds fit int64"),), "s"),
    ("precision ms in range", "{m} v=1 9223372036854", (ok(V1, timestamp=9223372036.854),), "ms"),
    ("precision ms overflow", "{m} v=1 9223372036855", (bad("nanoseconds fit int64"),), "ms"),
    # -- several entries: one bad line costs only itself ------------------------------------
    (
        "bad line between good ones",
        "{m} v=1\n{m} v=nan\n{m},t=z v=3",
        (ok(V1), bad("NaN"), ok({"v": 3.0}, {"t": "z"})),
    ),
    (
        "every line bad",
        "{m}\n{m} v=\n{m},t= v=1",
        (bad("expected a space"), bad("has no value"), bad("has no value")),
    ),
    (
        "good after an escape error",
        "{m},t=a\x01 v=1\n{m} v=2",
        (bad("control character"), ok({"v": 2.0})),
    ),
    ("same series twice: both points", "{m} v=1\n{m} v=2", (ok(V1), ok({"v": 2.0}))),
    ("different fields of one measurement", "{m} a=1\n{m} b=2", (ok({"a": 1.0}), ok({"b": 2.0}))),
    (
        "mixed types across lines",
        '{m} a=1i\n{m} b=t\n{m} c="s"',
        (ok({"a": 1}), ok({"b": True}), ok({"c": "s"})),
    ),
]

CASES: list[Case] = []
for index, raw in enumerate(_RAW):
    name, template, outcomes = raw[0], raw[1], raw[2]
    precision = raw[3] if len(raw) > 3 else "ns"  # type: ignore[misc]
    measurement = f"lp{index:03d}"

    def fill(outcome: Outcome, m: str = measurement) -> Outcome:
        if isinstance(outcome, Point):
            return Point(
                outcome.fields, outcome.tags, outcome.timestamp, outcome.measurement.format(m=m)
            )
        return outcome

    CASES.append(
        Case(name, template.replace("{m}", measurement), tuple(map(fill, outcomes)), precision)
    )
