"""Shared fixtures: the asyncio backend, the fake TwelveLabs server and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from twelvelabs_async import AsyncTwelveLabs, set_testing
from twelvelabs_async.testing import FakeTwelveLabs

# A rate limit no functional test reaches; rate-limit tests set their own.
UNLIMITED = 10**9


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp runs on asyncio only."""
    return "asyncio"


@pytest.fixture(autouse=True)
def instant_retries() -> Iterator[None]:
    """Retries wait zero seconds, as users' own suites would configure it."""
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwelveLabs]:
    """A fresh fake TwelveLabs API on 127.0.0.1."""
    async with FakeTwelveLabs(rate_limit_per_minute=UNLIMITED) as server:
        yield server


@pytest.fixture
async def client(fake: FakeTwelveLabs) -> AsyncIterator[AsyncTwelveLabs]:
    """A client pointed at ``fake``."""
    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as tl:
        yield tl


# --- reliability soak: scale option (small runs in the default suite) -------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--soak-scale=small|full``: how many tasks the chaos soak watches."""
    parser.addoption(
        "--soak-scale",
        action="store",
        choices=("small", "full"),
        default="small",
        help="chaos soak size: small (default suite, ~300 tasks) or full (10,000 tasks)",
    )


@pytest.fixture
def soak_scale(request: pytest.FixtureRequest) -> str:
    """The ``--soak-scale`` chosen on the command line (``small`` by default)."""
    return str(request.config.getoption("--soak-scale"))
