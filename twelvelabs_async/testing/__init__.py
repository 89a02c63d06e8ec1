"""A faithful fake of the TwelveLabs API (v1.3 long-running task endpoints) for tests.

It runs a real :mod:`aiohttp.web` server on 127.0.0.1, serves the embed-v2, embed
(v1) and analyze task endpoints, assets, multipart uploads (presigned part URLs
pointing back at itself, see ``fake.assets``) and analysis batches (``fake.batches``)
with realistic wire bodies, auth, rate-limit headers and status progression, and can
inject faults (error statuses, delays, truncated bodies, dropped connections, non-JSON
bodies) or random chaos on any route, the part storage included.

Example::

    import aiohttp
    from twelvelabs_async.testing import Chaos, FakeTwelveLabs

    async def test_poll_until_ready() -> None:
        async with FakeTwelveLabs() as fake:
            task_id = fake.add_task("embed_v2", finish_after_polls=2)
            fake.faults.push("GET /v1.3/embed-v2/tasks/{task_id}", status=503,
                             headers={"Retry-After": "0"})
            async with aiohttp.ClientSession(headers={"x-api-key": fake.api_key}) as http:
                url = f"{fake.base_url}/embed-v2/tasks/{task_id}"
                async with http.get(url) as r:
                    assert r.status == 503
                for expected in ("processing", "ready"):
                    async with http.get(url) as r:
                        assert (await r.json())["status"] == expected
            assert fake.request_count("GET /v1.3/embed-v2/tasks/{task_id}") == 3
            fake.chaos = Chaos(p_5xx=0.2, seed=7)  # random faults from now on

A pytest fixture ``twelvelabs_fake`` is provided by
:mod:`twelvelabs_async.testing.pytest_plugin`, and ``python -m
twelvelabs_async.testing --port 0`` runs the fake standalone.
"""

from ._app import RequestRecord
from ._assets import AssetRecord, AssetStore, UploadRecord
from ._batches import BatchRecord, BatchStore
from ._faults import Chaos, Fault, FaultPlan
from ._server import FakeTwelveLabs, WebhookDelivery
from ._store import FINAL_STATUSES, TaskKind, TaskRecord

__all__ = [
    "FINAL_STATUSES",
    "AssetRecord",
    "AssetStore",
    "BatchRecord",
    "BatchStore",
    "Chaos",
    "FakeTwelveLabs",
    "Fault",
    "FaultPlan",
    "RequestRecord",
    "TaskKind",
    "TaskRecord",
    "UploadRecord",
    "WebhookDelivery",
]
