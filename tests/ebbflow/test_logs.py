"""Log lines cannot be forged through what others wrote."""

import logging

import pytest

from ebbflow.logs import OneLineFormatter, escape_control


def test_control_characters_are_escaped() -> None:
    assert escape_control("a\nb\rc\td\x1b[31m\x00\u2028e") == r"a\nb\rc\td\x1b[31m\x00\u2028e"
    assert escape_control("ünïcode, quotes \" ' ok") == "ünïcode, quotes \" ' ok"


def test_a_label_key_with_a_newline_stays_on_its_line() -> None:
    formatter = OneLineFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.LogRecord(
        "ebbflow.rules", logging.WARNING, __file__, 1, "policy disabled: %s",
        ("ebbflow.scale.x\nERROR ebbflow: all good: unknown key",), None,
    )  # fmt: skip
    text = formatter.format(record)
    assert text.count("\n") == 0
    forged = r"ebbflow.scale.x\nERROR ebbflow: all good: unknown key"
    assert text == f"WARNING ebbflow.rules: policy disabled: {forged}"


def test_a_traceback_still_spans_its_lines(caplog: pytest.LogCaptureFixture) -> None:
    formatter = OneLineFormatter("%(message)s")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "crashed", (), sys.exc_info())
    text = formatter.format(record)
    assert text.startswith("crashed\nTraceback (most recent call last):")


def test_a_message_is_cut_at_its_bound_and_says_how_much_was_left_out() -> None:
    import logging

    from ebbflow.logs import MAX_MESSAGE, OneLineFormatter

    body = "é" * 5_000_000  # a 10 MB scrape body that is not valid UTF-8, replaced
    record = logging.LogRecord(
        "ebbflow.test", logging.WARNING, "", 0, "bad body: %s", (body,), None
    )
    line = OneLineFormatter("%(message)s").format(record)
    assert len(line) < MAX_MESSAGE + 100
    assert line.endswith(f"… ({len(body) + 10 - MAX_MESSAGE} more characters not logged)")
