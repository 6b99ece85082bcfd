"""Request bodies, bounded in size and in time: a JSON body over `max_json_bytes` is refused
(BODY_TOO_LARGE), and a body that stalls for `body_timeout_s` — or takes longer than its size allows
at a minimum rate — is cut (REQUEST_TIMEOUT, the connection closed).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from .codes import AgentRefusal, Code

MIN_RATE = 64 * 1024  # bytes per second a body must keep up, on top of the idle timeout
DRAIN_CAP = 8 << 20  # an oversized JSON body up to this size is read (and dropped) before the answer


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


async def drain(request, *, idle_s: float, declared: int) -> bool:
    """Read and drop a body of at most DRAIN_CAP bytes; True when it was read to its end."""
    if declared > DRAIN_CAP:
        return False
    total = 0
    async for chunk in chunks(request, idle_s=idle_s, size_hint=declared):
        total += len(chunk)
        if total > DRAIN_CAP:
            return False
    return True


def declared_length(request) -> int | None:
    """Content-Length as an int, None when absent. INVALID_REQUEST when it is not a number."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise AgentRefusal(Code.INVALID_REQUEST, "Content-Length is not a number", close=True)
    return int(value)


async def read_json(request, *, limit: int, idle_s: float):
    """The JSON document of the body, at most `limit` bytes. INVALID_REQUEST for malformed JSON.

    An oversized body of up to DRAIN_CAP bytes is read to its end (and dropped) before the
    BODY_TOO_LARGE answer, so the client reliably receives it: closing a connection with unread data
    makes TCP reset it, and the client would see a reset instead of the answer. A larger body is cut.
    """
    length = declared_length(request)
    if length is not None and length > DRAIN_CAP:
        raise AgentRefusal(Code.BODY_TOO_LARGE, f"the body is {length} bytes; the limit is {limit}", close=True)
    data, total = bytearray(), 0
    async for chunk in chunks(request, idle_s=idle_s, size_hint=max(limit, length or 0)):
        total += len(chunk)
        if total > DRAIN_CAP:
            raise AgentRefusal(Code.BODY_TOO_LARGE, f"the body passed the {limit}-byte limit", close=True)
        if total <= limit:
            data += chunk
    if length is not None and length > limit:
        raise AgentRefusal(Code.BODY_TOO_LARGE, f"the body is {length} bytes; the limit is {limit}")
    if total > limit:
        raise AgentRefusal(Code.BODY_TOO_LARGE, f"the body passed the {limit}-byte limit")

    def no_constant(name: str):
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(bytes(data).decode("utf-8"), parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise AgentRefusal(Code.INVALID_REQUEST, f"the body is not valid UTF-8 JSON ({reason})") from None
