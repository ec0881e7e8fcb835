"""Index reads run on the event loop when the index is free, and never stall it when it is not.

``ActionCall.run_async`` serves ``from_index`` actions (get, list, dashboard) inline on the loop;
a writer holding the store (e.g. in the middle of an fsync) must send those reads to the thread
pool instead, so other requests keep being answered meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
from fastapi import FastAPI

from services.router.stores.indexed import hold_if_free
from services.router.stores.memory import MemoryBacklogStore
from tests.api.conftest import headers_for
from tests.factories import item


def test_hold_if_free_does_not_wait_for_another_thread(store: MemoryBacklogStore) -> None:
    with hold_if_free(store) as held:
        assert held
        with hold_if_free(store) as again:  # the same thread may re-enter
            assert again
    taken, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store._mutex:
            taken.set()
            release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        taken.wait(5)
        started = time.monotonic()
        with hold_if_free(store) as held:
            assert not held
        assert time.monotonic() - started < 0.5
    finally:
        release.set()
        thread.join()


def test_a_held_store_sends_reads_to_the_pool_and_the_loop_keeps_serving(
    app: FastAPI, store: MemoryBacklogStore
) -> None:
    created = store.upsert(item("k1"), actor="t").item
    taken, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store._mutex:  # a write in progress in another thread
            taken.set()
            release.wait(5)

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            read = asyncio.create_task(
                client.get(f"/v1/backlog/items/{created['id']}", headers=headers_for("readonly")))
            health = await asyncio.wait_for(client.get("/healthz"), timeout=2)
            assert health.status_code == 200
            assert not read.done()  # waiting in the pool for the writer, not on the loop
            release.set()
            return await asyncio.wait_for(read, timeout=5)

    thread = threading.Thread(target=writer)
    thread.start()
    taken.wait(5)
    try:
        response = asyncio.run(scenario())
    finally:
        release.set()
        thread.join()
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
