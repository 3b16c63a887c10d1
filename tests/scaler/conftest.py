"""Fixtures the actuator tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import free_port
from tests.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real webhook receiver on loopback, for the alerts ebbflow sends."""
    hook = Receiver(free_port())
    await hook.start()
    yield hook
    await hook.stop()
