"""Pytest plugin providing the ``twelvelabs_fake`` fixture (a started ``FakeTwelveLabs``).

The fixture is a plain ``async def`` fixture, so an async-capable pytest plugin
must run it (this project uses the AnyIO plugin; with its asyncio backend).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._server import FakeTwelveLabs

__all__ = ["twelvelabs_fake"]


@pytest.fixture
async def twelvelabs_fake() -> AsyncIterator[FakeTwelveLabs]:
    """A started :class:`FakeTwelveLabs` with default settings, closed after the test."""
    async with FakeTwelveLabs() as fake:
        yield fake
