"""The agent's HTTP API (SPEC §10.3), a Starlette application. Every refusal is answered with its
HTTP status and `{"error": {"code", "message", "hint"}}`, and counted in /metrics.

    GET  /v1/status                    device, active/previous release, highest versions, health
    HEAD /v1/blobs/sha256:HEX          200 with X-Edgegate-Size when held, else 404
    PUT  /v1/blobs/sha256:HEX          upload; the length is X-Edgegate-Size (or Content-Length)
    POST /v1/deploy                    {manifest, nonce, issued_at, rollout_id} -> 202 {id, status, ...}
    GET  /v1/deployments/ID            staging | loading | warming | active | failed (with code)
    POST /v1/rollback                  {directive} -> 200 the rollback's deployment record
    POST /v1/infer                     {inputs: {name: nested list}} -> outputs, latency_ms, model
    GET  /metrics                      Prometheus text format

Blocking work (state fsync, signature checks, inference) runs in the thread pool, never on the loop.
"""

from __future__ import annotations

import re
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .bodies import chunks, declared_length, drain, read_json
from .codes import AgentRefusal, Code
from .deploy import accept_deploy, resume_interrupted
from .rollback import rollback
from .runtime import Agent

BLOB_RE = re.compile(r"^sha256:([0-9a-f]{64})\Z")
SIZE_HEADER = "x-edgegate-size"


class Routes:
    """The endpoints, bound to one Agent (no process globals: tests may run several agents)."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self.limits = agent.cfg.limits

    async def json_body(self, request: Request):
        return await read_json(request, limit=int(self.limits["max_json_bytes"]),
                               idle_s=self.limits["body_timeout_s"])

    async def status(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(self.agent.status))

    async def blob(self, request: Request) -> Response:
        match = BLOB_RE.match(request.path_params["digest"])
        if not match:
            raise AgentRefusal(Code.INVALID_REQUEST, "blobs are addressed as /v1/blobs/sha256:<64 lowercase hex>",
                               close=request.method == "PUT")
        held = self.agent.blobs.size(match.group(1))
        if request.method == "HEAD":
            return Response(status_code=200 if held is not None else 404,
                            headers={"X-Edgegate-Size": str(held)} if held is not None else None)
        try:
            return await self.put_blob(request, match.group(1), held)
        except AgentRefusal as exc:
            await run_in_threadpool(self.agent.record, exc)
            raise

    async def put_blob(self, request: Request, hexdigest: str, held: int | None) -> Response:
        declared = _declared_size(request, int(self.limits["max_blob_bytes"]))
        if held is not None and held == declared:  # already here: the body is not needed
            whole = await drain(request, idle_s=self.limits["body_timeout_s"], declared=declared)
            return JSONResponse({"sha256": "sha256:" + hexdigest, "size": held, "stored": False},
                                headers=None if whole else {"Connection": "close"})
        body = chunks(request, idle_s=self.limits["body_timeout_s"], size_hint=declared)
        try:
            size = await self.agent.blobs.receive(hexdigest, declared, body)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody to answer; the partial upload was dropped
        return JSONResponse({"sha256": "sha256:" + hexdigest, "size": size, "stored": True}, status_code=201)

    async def deploy(self, request: Request) -> Response:
        body = await self.json_body(request)
        return JSONResponse(await run_in_threadpool(accept_deploy, self.agent, body), status_code=202)

    async def deployment(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(self.agent.deployment, request.path_params["id"]))

    async def rollback(self, request: Request) -> Response:
        body = await self.json_body(request)
        return JSONResponse(await run_in_threadpool(rollback, self.agent, body))

    async def infer(self, request: Request) -> Response:
        body = await self.json_body(request)
        return JSONResponse(await run_in_threadpool(self.agent.infer, body))

    async def metrics(self, request: Request) -> Response:
        data, content_type = self.agent.metrics.exposition()
        return Response(data, media_type=content_type)

    async def refused(self, request: Request, exc: AgentRefusal) -> Response:
        self.agent.count(exc)
        return JSONResponse(exc.to_json(), status_code=exc.http_status,
                            headers={"Connection": "close"} if exc.close else None)

    async def http_error(self, request: Request, exc: HTTPException) -> Response:
        code = Code.NOT_FOUND if exc.status_code == 404 else Code.INVALID_REQUEST
        return JSONResponse({"error": {"code": str(code), "message": exc.detail, "hint": None}},
                            status_code=exc.status_code, headers=exc.headers)


    async def internal(self, request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": {"code": "INTERNAL", "message": f"internal error: {type(exc).__name__}",
                                       "hint": "the agent's log has the traceback"}}, status_code=500)


def create_app(agent: Agent, background=None) -> Starlette:
    """The ASGI application of `agent`; its lifespan restores the active model before serving, then starts
    `background` (the pull loop, with start() and stop()) if given, and stops it on shutdown."""
    routes = Routes(agent)

    @asynccontextmanager
    async def lifespan(app):
        await run_in_threadpool(agent.restore)  # the active model serves again before the first request
        await run_in_threadpool(resume_interrupted, agent)
        if background is not None:
            background.start()
        try:
            yield
        finally:
            if background is not None:
                await run_in_threadpool(background.stop)

    return Starlette(
        routes=[Route("/v1/status", routes.status, methods=["GET"]),
                Route("/v1/blobs/{digest}", routes.blob, methods=["HEAD", "PUT"]),
                Route("/v1/deploy", routes.deploy, methods=["POST"]),
                Route("/v1/deployments/{id}", routes.deployment, methods=["GET"]),
                Route("/v1/rollback", routes.rollback, methods=["POST"]),
                Route("/v1/infer", routes.infer, methods=["POST"]),
                Route("/metrics", routes.metrics, methods=["GET"])],
        lifespan=lifespan, exception_handlers={AgentRefusal: routes.refused, HTTPException: routes.http_error,
                            Exception: routes.internal})


def _declared_size(request: Request, limit: int) -> int:
    """The blob's declared length: X-Edgegate-Size, else Content-Length (they must agree when both given)."""
    content_length = declared_length(request)
    header = request.headers.get(SIZE_HEADER)
    if header is not None and not header.isdigit():
        raise AgentRefusal(Code.INVALID_REQUEST, "X-Edgegate-Size is not a number", close=True)
    declared = int(header) if header is not None else content_length
    if declared is None:
        raise AgentRefusal(Code.LENGTH_REQUIRED, "a blob upload must declare its length (X-Edgegate-Size or "
                                                 "Content-Length)", close=True)
    if content_length is not None and content_length != declared:
        raise AgentRefusal(Code.LENGTH_MISMATCH, f"Content-Length {content_length} differs from the declared "
                                                 f"X-Edgegate-Size {declared}; nothing kept", close=True)
    if declared > limit:
        raise AgentRefusal(Code.BODY_TOO_LARGE, f"the blob declares {declared} bytes; the limit is {limit}",
                           close=True)
    return declared
