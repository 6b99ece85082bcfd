"""The rate of a fan-out: bounded concurrency (a semaphore), an optional per-minute cap (start times
spaced 60/N s apart), over the fleet's one agent client (mutual TLS with the fleet CA)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager


@asynccontextmanager
async def open_client(ws, rate):
    from ..fleet.agent_client import AgentClient
    from ..fleet.tls import fleet_tls

    client = AgentClient(fleet_tls(ws).ssl_context(), timeout=rate.device_timeout_s,
                         max_connections=rate.concurrency)
    try:
        yield client
    finally:
        await client.aclose()


async def gather_bounded(calls, rate) -> None:
    """Run the coroutine factories in `calls`, at most rate.concurrency at once, at most rate.per_minute
    started per minute when set."""
    sem = asyncio.Semaphore(max(1, rate.concurrency))
    loop = asyncio.get_running_loop()
    gap = 60.0 / rate.per_minute if rate.per_minute else 0.0
    start = loop.time()

    async def one(i, call):
        if gap:
            await asyncio.sleep(max(0.0, start + i * gap - loop.time()))
        async with sem:
            await call()

    await asyncio.gather(*(one(i, c) for i, c in enumerate(calls)))
