"""Client lifecycle: configuration from arguments and the environment, the lazily created
aiohttp session, closing, user-supplied sessions, and the plain-http key guard."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest

from twelvelabs_async import (
    AsyncTwelveLabs,
    AuthenticationError,
    ClientClosedError,
    EmbeddingTask,
)
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

KEY_VARS = ("TWELVELABS_API_KEY", "TWELVE_LABS_API_KEY")
BASE_URL_VAR = "TWELVELABS_BASE_URL"
DEFAULT_BASE_URL = "https://api.twelvelabs.io/v1.3"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TwelveLabs variables in the environment unless a test sets them."""
    for name in (*KEY_VARS, BASE_URL_VAR):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
async def strict_fake() -> AsyncIterator[FakeTwelveLabs]:
    """A fake that accepts exactly one key, so a success proves which key was sent."""
    async with FakeTwelveLabs(api_key="the-right-key", rate_limit_per_minute=10**9) as server:
        yield server


SessionLog = list[tuple[aiohttp.ClientSession, "asyncio.AbstractEventLoop | None"]]


@pytest.fixture
def counting_sessions(monkeypatch: pytest.MonkeyPatch) -> SessionLog:
    """Records every aiohttp session the client creates and the loop it was created in."""
    created: SessionLog = []
    real_session = aiohttp.ClientSession

    def factory(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        session = real_session(*args, **kwargs)
        created.append((session, loop))
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", factory)
    return created


# --- api key -------------------------------------------------------------------------------


async def test_api_key_from_twelvelabs_api_key(
    clean_env: pytest.MonkeyPatch, strict_fake: FakeTwelveLabs
) -> None:
    clean_env.setenv("TWELVELABS_API_KEY", "the-right-key")
    task_id = strict_fake.add_task("embed_v2")
    async with AsyncTwelveLabs(base_url=strict_fake.base_url) as client:
        task = await client.embed.v2.tasks.retrieve(task_id)
    assert task.id == task_id


async def test_api_key_falls_back_to_twelve_labs_api_key(
    clean_env: pytest.MonkeyPatch, strict_fake: FakeTwelveLabs
) -> None:
    clean_env.setenv("TWELVE_LABS_API_KEY", "the-right-key")
    task_id = strict_fake.add_task("embed_v2")
    async with AsyncTwelveLabs(base_url=strict_fake.base_url) as client:
        task = await client.embed.v2.tasks.retrieve(task_id)
    assert task.id == task_id


async def test_twelvelabs_api_key_wins_over_twelve_labs_api_key(
    clean_env: pytest.MonkeyPatch, strict_fake: FakeTwelveLabs
) -> None:
    clean_env.setenv("TWELVELABS_API_KEY", "the-right-key")
    clean_env.setenv("TWELVE_LABS_API_KEY", "the-wrong-key")
    task_id = strict_fake.add_task("embed_v2")
    async with AsyncTwelveLabs(base_url=strict_fake.base_url) as client:
        assert (await client.embed.v2.tasks.retrieve(task_id)).id == task_id


async def test_empty_primary_variable_falls_back_to_secondary(
    clean_env: pytest.MonkeyPatch, strict_fake: FakeTwelveLabs
) -> None:
    clean_env.setenv("TWELVELABS_API_KEY", "")
    clean_env.setenv("TWELVE_LABS_API_KEY", "the-right-key")
    task_id = strict_fake.add_task("embed_v2")
    async with AsyncTwelveLabs(base_url=strict_fake.base_url) as client:
        assert (await client.embed.v2.tasks.retrieve(task_id)).id == task_id


async def test_explicit_api_key_wins_over_environment(
    clean_env: pytest.MonkeyPatch, strict_fake: FakeTwelveLabs
) -> None:
    clean_env.setenv("TWELVELABS_API_KEY", "the-wrong-key")
    clean_env.setenv("TWELVE_LABS_API_KEY", "the-wrong-key")
    task_id = strict_fake.add_task("embed_v2")
    async with AsyncTwelveLabs("the-right-key", base_url=strict_fake.base_url) as client:
        assert (await client.embed.v2.tasks.retrieve(task_id)).id == task_id
    # ...and the environment key really is wrong: it is refused.
    async with AsyncTwelveLabs(base_url=strict_fake.base_url) as client:
        with pytest.raises(AuthenticationError):
            await client.embed.v2.tasks.retrieve(task_id, max_retries=0)


def test_missing_api_key_raises_at_construction_naming_both_variables(
    clean_env: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError) as info:
        AsyncTwelveLabs(base_url="https://api.example.com/v1.3")
    message = str(info.value)
    assert "TWELVELABS_API_KEY" in message
    assert "TWELVE_LABS_API_KEY" in message


def test_empty_api_key_is_missing(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TWELVELABS_API_KEY", "")
    clean_env.setenv("TWELVE_LABS_API_KEY", "")
    with pytest.raises(ValueError, match="TWELVE_LABS_API_KEY"):
        AsyncTwelveLabs()
    with pytest.raises(ValueError, match="TWELVELABS_API_KEY"):
        AsyncTwelveLabs(api_key="")


# --- base url ------------------------------------------------------------------------------


def test_base_url_defaults_to_public_api(clean_env: pytest.MonkeyPatch) -> None:
    client = AsyncTwelveLabs(api_key="k")
    assert client.base_url == DEFAULT_BASE_URL


def test_base_url_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(BASE_URL_VAR, "https://eu.example.com/v1.3")
    assert AsyncTwelveLabs(api_key="k").base_url == "https://eu.example.com/v1.3"
    # An explicit base_url beats the environment; a trailing slash is dropped.
    explicit = AsyncTwelveLabs(api_key="k", base_url="https://other.example.com/v1.3/")
    assert explicit.base_url == "https://other.example.com/v1.3"


async def test_base_url_from_environment_is_used_for_requests(
    clean_env: pytest.MonkeyPatch, fake: FakeTwelveLabs
) -> None:
    clean_env.setenv(BASE_URL_VAR, fake.base_url)
    task_id = fake.add_task("analyze")
    async with AsyncTwelveLabs(api_key=fake.api_key) as client:
        task = await client.analyze.tasks.retrieve(task_id)
    assert task.task_id == task_id
    assert fake.request_count("GET /v1.3/analyze/tasks/{task_id}") == 1


def test_invalid_base_url_rejected(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        AsyncTwelveLabs(api_key="k", base_url="ftp://example.com/v1.3")
    with pytest.raises(ValueError):
        AsyncTwelveLabs(api_key="k", base_url="not a url")


def test_invalid_pool_and_retry_settings_rejected(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        AsyncTwelveLabs(api_key="k", max_connections=0)
    with pytest.raises(ValueError):
        AsyncTwelveLabs(api_key="k", max_retries=-1)


# --- plain http guard ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://api.example.com/v1.3", "http://10.0.0.8:8080/v1.3", "http://192.168.1.2/v1.3"],
)
def test_plain_http_to_remote_host_refused(clean_env: pytest.MonkeyPatch, url: str) -> None:
    with pytest.raises(ValueError) as info:
        AsyncTwelveLabs(api_key="tlk_do_not_leak_me", base_url=url)
    assert "allow_insecure_http" in str(info.value)
    assert "tlk_do_not_leak_me" not in str(info.value)
    # Explicitly allowed: construction succeeds.
    client = AsyncTwelveLabs(api_key="k", base_url=url, allow_insecure_http=True)
    assert client.base_url == url


def test_plain_http_from_environment_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(BASE_URL_VAR, "http://api.example.com/v1.3")
    with pytest.raises(ValueError, match="allow_insecure_http"):
        AsyncTwelveLabs(api_key="k")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1.3",
        "http://127.1.2.3/v1.3",
        "http://localhost:8000/v1.3",
        "http://[::1]:8000/v1.3",
        "https://api.example.com/v1.3",
    ],
)
def test_loopback_http_and_https_allowed(clean_env: pytest.MonkeyPatch, url: str) -> None:
    assert AsyncTwelveLabs(api_key="k", base_url=url).base_url == url


# --- the session ---------------------------------------------------------------------------


def test_construction_outside_a_loop_creates_no_session(
    clean_env: pytest.MonkeyPatch, counting_sessions: SessionLog
) -> None:
    client = AsyncTwelveLabs(api_key="k", base_url="https://api.example.com/v1.3")
    assert counting_sessions == []
    assert not client.is_closed


def test_client_built_outside_the_loop_works_inside_it(
    clean_env: pytest.MonkeyPatch, counting_sessions: SessionLog
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = AsyncTwelveLabs(api_key="k", base_url=f"http://127.0.0.1:{port}/v1.3")
    assert counting_sessions == []

    async def main() -> None:
        async with FakeTwelveLabs(port=port) as server:
            task_id = server.add_task("embed_v1")
            status = await client.embed.v1.tasks.status(task_id)
            assert status.id == task_id
            assert len(counting_sessions) == 1
            session, loop = counting_sessions[0]
            assert loop is asyncio.get_running_loop()
            await client.aclose()
            assert session.closed

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        anyio.run(main, backend="asyncio")
        gc.collect()
    assert [str(w.message) for w in caught] == []


async def test_one_session_created_lazily_in_the_running_loop(
    clean_env: pytest.MonkeyPatch, fake: FakeTwelveLabs, counting_sessions: SessionLog
) -> None:
    task_ids = fake.add_tasks("embed_v2", 8)
    client = AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url)
    assert counting_sessions == []
    async with client:
        assert counting_sessions == []  # entering the context does not open anything yet
        results: list[EmbeddingTask] = []

        async def fetch(task_id: str) -> None:
            results.append(await client.embed.v2.tasks.retrieve(task_id))

        async with anyio.create_task_group() as tg:
            for task_id in task_ids:
                tg.start_soon(fetch, task_id)
        await client.analyze.tasks.list().to_list()
        assert sorted(t.id for t in results) == sorted(task_ids)
        assert len(counting_sessions) == 1
        session, loop = counting_sessions[0]
        assert loop is asyncio.get_running_loop()
        assert not session.closed
    assert session.closed
    assert client.is_closed


async def test_aclose_closes_and_is_idempotent(
    fake: FakeTwelveLabs, counting_sessions: SessionLog
) -> None:
    client = AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url)
    await client.embed.v2.tasks.list().to_list()
    (session, _loop) = counting_sessions[0]
    await client.aclose()
    assert session.closed
    assert client.is_closed
    assert "closed" in repr(client)
    await client.aclose()  # twice is fine
    assert client.is_closed


async def test_aclose_of_unused_client_is_fine(fake: FakeTwelveLabs) -> None:
    client = AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url)
    assert "open" in repr(client)
    await client.aclose()
    assert client.is_closed
    with pytest.raises(ClientClosedError, match="closed"):
        await client.embed.v2.tasks.retrieve("abc")


async def test_context_manager_returns_client_and_closes_on_error(
    fake: FakeTwelveLabs, counting_sessions: SessionLog
) -> None:
    used: list[AsyncTwelveLabs] = []

    async def body() -> None:
        async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
            assert isinstance(client, AsyncTwelveLabs)
            used.append(client)
            await client.embed.v2.tasks.list().to_list()
            raise KeyError("boom")

    with pytest.raises(KeyError):
        await body()
    assert used[0].is_closed
    assert counting_sessions[0][0].closed


async def test_user_session_is_used_and_not_closed(fake: FakeTwelveLabs) -> None:
    started: list[str] = []

    async def on_request_start(
        session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        started.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    task_id = fake.add_task("embed_v2")
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        async with AsyncTwelveLabs(
            api_key=fake.api_key, base_url=fake.base_url, session=session
        ) as client:
            await client.embed.v2.tasks.retrieve(task_id)
            await client.analyze.tasks.list().to_list()
        assert client.is_closed
        assert not session.closed
        assert len(started) == 2
        assert started[0].endswith(f"/v1.3/embed-v2/tasks/{task_id}")
        # The session still works for the user.
        async with session.get(fake.url + "/v1.3/embed-v2/tasks") as resp:
            assert resp.status == 401  # no key: the request went out fine
        # ...and the closed client refuses to use it.
        with pytest.raises(ClientClosedError, match="closed"):
            await client.embed.v2.tasks.retrieve(task_id)
    assert session.closed


async def test_user_session_closed_by_user_is_reported(fake: FakeTwelveLabs) -> None:
    session = aiohttp.ClientSession()
    client = AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url, session=session)
    await session.close()
    assert client.is_closed
    with pytest.raises(ClientClosedError) as info:
        await client.embed.v2.tasks.retrieve("abc")
    assert isinstance(info.value, RuntimeError)
    assert "closed" in str(info.value).lower()
    await client.aclose()


async def test_every_operation_on_a_closed_client_raises_runtime_error(
    fake: FakeTwelveLabs,
) -> None:
    v2_id = fake.add_task("embed_v2")
    v1_id = fake.add_task("embed_v1")
    an_id = fake.add_task("analyze")
    client = AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url)
    await client.embed.v2.tasks.retrieve(v2_id)
    await client.aclose()
    before = fake.request_count()

    operations = [
        lambda: client.embed.v2.tasks.retrieve(v2_id),
        lambda: client.embed.v2.tasks.list().to_list(),
        lambda: client.embed.v2.tasks.create(
            input_type="video", model_name="marengo3.0", video={"media_source": {"url": "u"}}
        ),
        lambda: client.embed.v2.tasks.wait(v2_id, poll_interval=0.01),
        lambda: client.embed.v1.tasks.status(v1_id),
        lambda: client.embed.v1.tasks.retrieve(v1_id),
        lambda: client.embed.v1.tasks.create(model_name="marengo3.0", video_url="https://x/y"),
        lambda: client.analyze.tasks.retrieve(an_id),
        lambda: client.analyze.tasks.list().to_list(),
        lambda: client.analyze.tasks.create(video={"type": "url", "url": "https://x/y"}),
        lambda: client.analyze.tasks.cancel(an_id),
        lambda: client.analyze.tasks.delete(an_id),
    ]
    for operation in operations:
        with pytest.raises(RuntimeError) as info:
            await operation()
        assert isinstance(info.value, ClientClosedError)
        assert "closed" in str(info.value).lower()
    assert fake.request_count() == before


async def test_no_resource_warnings_after_a_full_lifecycle(fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
                await client.embed.v2.tasks.retrieve(task_id)
                fake.faults.push("GET /v1.3/embed-v2/tasks/{task_id}", drop=True)
                await client.embed.v2.tasks.retrieve(task_id)  # a broken connection too
            del client
        gc.collect()
        await anyio.lowlevel.checkpoint()
    assert [str(w.message) for w in caught] == []


def test_no_event_loop_closed_errors_across_loops(clean_env: pytest.MonkeyPatch) -> None:
    """Two clients in two successive event loops, each closed inside its own loop."""

    async def one_run() -> None:
        async with FakeTwelveLabs() as server:
            task_id = server.add_task("analyze")
            async with AsyncTwelveLabs(api_key="k", base_url=server.base_url) as client:
                assert (await client.analyze.tasks.retrieve(task_id)).task_id == task_id

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        anyio.run(one_run, backend="asyncio")
        anyio.run(one_run, backend="asyncio")
        gc.collect()
    assert [str(w.message) for w in caught] == []
