"""What every server of ebbflow says when it opens: where, and a warning when anyone
beyond loopback may reach it with no authentication."""

from __future__ import annotations

import logging

import pytest

from ebbflow.web.listener import Listener, loopback


def test_beyond_loopback_without_auth_is_a_warning_naming_what_is_exposed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost")
    assert not loopback("0.0.0.0") and not loopback("") and not loopback("decider")
    with caplog.at_level(logging.INFO, logger="ebbflow.web"):
        Listener("remote_write", "127.0.0.1", 9201, None, "anyone may write")._said_where()
        Listener("remote_write", "", 9201, None, "whoever reaches it may write")._said_where()
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said[0] == ("INFO", "remote_write: serving on http://127.0.0.1:9201")
    assert said[2][0] == "WARNING" and said[2][1].startswith(
        "remote_write: listening on every address, beyond loopback, with no authentication: "
        "whoever reaches it may write; bind to 127.0.0.1"
    )
    assert len(said) == 3
