"""BENCH-ONLY simulator: one process answering the edge agent's push protocol for many devices, each at
`https://127.0.0.1:PORT/d/<device id>` (mutual TLS with the fleet CA, like a real agent). It is NOT an
agent: it loads no model and checks no signature; it holds per-device state (blobs held, active,
previous), reads and counts every uploaded byte, answers /v1/status, HEAD/PUT /v1/blobs, POST /v1/deploy
(the deployment is active at once), GET /v1/deployments/ID and a small /metrics. Used by
bench/rollout_scale.py only.

Run: python bench/rollout_sim.py PORT CERT KEY CA
"""

from __future__ import annotations

import base64
import json
import ssl
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

DEVICES: dict[str, dict] = {}
RECEIVED = {"bytes": 0}
METRICS = ("# TYPE edgegate_agent_inference_latency_seconds histogram\n"
           'edgegate_agent_inference_latency_seconds_bucket{{le="0.001",name="{n}",version="{v}"}} 0\n'
           'edgegate_agent_inference_latency_seconds_bucket{{le="+Inf",name="{n}",version="{v}"}} 0\n'
           'edgegate_agent_inference_latency_seconds_count{{name="{n}",version="{v}"}} 0\n')


def dev(request: Request) -> dict:
    d = request.path_params["dev"]
    return DEVICES.setdefault(d, {"id": d, "blobs": set(), "active": None, "previous": None, "dep": None})


async def status(request: Request):
    d = dev(request)
    return JSONResponse({"device_id": d["id"], "active": d["active"], "previous": d["previous"],
                         "deployment": d["dep"], "health": []})


async def blob(request: Request):
    d, digest = dev(request), request.path_params["digest"]
    if request.method == "HEAD":
        return Response(status_code=200 if digest in d["blobs"] else 404)
    n = 0
    async for chunk in request.stream():
        n += len(chunk)
    RECEIVED["bytes"] += n
    d["blobs"].add(digest)
    return JSONResponse({"sha256": digest, "size": n, "stored": True}, status_code=201)


async def deploy(request: Request):
    d, body = dev(request), await request.json()
    predicate = json.loads(base64.b64decode(body["manifest"]["payload"]))["predicate"]
    release = {"name": predicate["name"], "version": predicate["version"], "sha256": predicate["model"]["identity"]}
    d["previous"], d["active"] = d["active"], release
    d["dep"] = {"id": "dep-" + d["id"], "status": "active", "code": None, "release": release}
    return JSONResponse(d["dep"], status_code=202)


async def deployment(request: Request):
    return JSONResponse(dev(request)["dep"])


async def metrics(request: Request):
    a = dev(request)["active"] or {"name": "none", "version": "0"}
    return PlainTextResponse(METRICS.format(n=a["name"], v=a["version"]))


async def received(request: Request):
    return JSONResponse(RECEIVED)


app = Starlette(routes=[
    Route("/d/{dev}/v1/status", status), Route("/d/{dev}/v1/blobs/{digest}", blob, methods=["HEAD", "PUT"]),
    Route("/d/{dev}/v1/deploy", deploy, methods=["POST"]), Route("/d/{dev}/v1/deployments/{id}", deployment),
    Route("/d/{dev}/metrics", metrics), Route("/received", received)])

if __name__ == "__main__":
    import uvicorn

    port, cert, key, ca = sys.argv[1:5]
    uvicorn.run(app, host="127.0.0.1", port=int(port), ssl_certfile=cert, ssl_keyfile=key, ssl_ca_certs=ca,
                ssl_cert_reqs=ssl.CERT_REQUIRED, log_level="warning", backlog=4096)
