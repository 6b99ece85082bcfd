"""Request bodies, bounded in size and in time: a JSON body is cut past `max_json_bytes`
(BODY_TOO_LARGE), and a body that stalls for `body_timeout_s` — or takes longer than its size allows
at a minimum rate — is cut (REQUEST_TIMEOUT). Both answers close the connection, since the rest of
the body was never read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from .codes import AgentRefusal, Code

MIN_RATE = 64 * 1024  # bytes per second a body must keep up, on top of the idle timeout


async def chunks(request, *, idle_s: float, size_hint: int) -> AsyncIterator[bytes]:
    """The body's chunks; REQUEST_TIMEOUT after `idle_s` without data or past the overall deadline."""
    deadline = time.monotonic() + idle_s + size_hint / MIN_RATE
    stream = request.stream().__aiter__()
    while True:
        wait = min(idle_s, deadline - time.monotonic())
        try:
            if wait <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(stream.__anext__(), wait)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise AgentRefusal(Code.REQUEST_TIMEOUT, f"the request body stalled (no data for {idle_s:g} s, or "
                                                     f"slower than {MIN_RATE // 1024} KiB/s); the connection is "
                                                     "closed", close=True) from None
        if chunk:
            yield chunk


def declared_length(request) -> int | None:
    """Content-Length as an int, None when absent. INVALID_REQUEST when it is not a number."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise AgentRefusal(Code.INVALID_REQUEST, "Content-Length is not a number", close=True)
    return int(value)


async def read_json(request, *, limit: int, idle_s: float):
    """The JSON document of the body, at most `limit` bytes. INVALID_REQUEST for malformed JSON."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise AgentRefusal(Code.BODY_TOO_LARGE, f"the body is {length} bytes; the limit is {limit}", close=True)
    data = bytearray()
    async for chunk in chunks(request, idle_s=idle_s, size_hint=limit):
        data += chunk
        if len(data) > limit:
            raise AgentRefusal(Code.BODY_TOO_LARGE, f"the body passed the {limit}-byte limit", close=True)

    def no_constant(name: str):
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(bytes(data).decode("utf-8"), parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise AgentRefusal(Code.INVALID_REQUEST, f"the body is not valid UTF-8 JSON ({reason})") from None
