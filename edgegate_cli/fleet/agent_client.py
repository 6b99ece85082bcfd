"""The one client of the edge agents' API (SPEC §10.3): httpx over mutual TLS (the fleet CA verifies the
agent, the release box presents its client certificate; never verify=False), async so a rollout can push
thousands at once.

One httpx.AsyncClient per device address, all sharing one SSLContext: each device's pool is then one or
two connections (a shared pool of thousands makes httpcore scan every connection per request). Methods
take the Device (or anything with `.address`) or the address itself. Agent refusals become AgentError
carrying the agent's code and HTTP status; timeouts and connection failures become AgentUnreachable.
"""

from __future__ import annotations

import os

from ..errors import EdgeGateError, ExitCode, RunError


class AgentError(EdgeGateError):
    """The agent answered with a refusal `{"error": {"code", "message"}}` (code e.g. DOWNGRADE)."""

    exit_code = ExitCode.RUN_ERROR

    def __init__(self, code: str, status: int, message: str):
        super().__init__(message, code=code)
        self.status = status


class AgentUnreachable(RunError):
    code = "AGENT_UNREACHABLE"


def _address(device) -> str:
    return (device if isinstance(device, str) else device.address).rstrip("/")


class AgentClient:
    def __init__(self, ssl_context, *, timeout: float = 30.0, max_connections: int = 64):
        self.ssl_context, self.timeout = ssl_context, timeout
        self._clients: dict = {}

    def _client(self, address: str):
        import httpx

        client = self._clients.get(address)
        if client is None:
            client = self._clients[address] = httpx.AsyncClient(
                base_url=address, verify=self.ssl_context, timeout=self.timeout,
                limits=httpx.Limits(max_connections=2, max_keepalive_connections=2))
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def forget(self, device) -> None:
        """Close one device's connections (a fan-out over thousands keeps only the devices in flight)."""
        client = self._clients.pop(_address(device), None)
        if client is not None:
            await client.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    async def _request(self, method: str, device, path: str, **kwargs):
        import httpx

        address = _address(device)
        try:
            response = await self._client(address).request(method, address + path, **kwargs)
        except httpx.TransportError as exc:
            raise AgentUnreachable(f"{address}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                                   hint="is the agent running and reachable?") from None
        if response.status_code >= 400 and not (method == "HEAD" and response.status_code == 404):
            try:
                error = response.json()["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = f"HTTP_{response.status_code}", response.text[:200]
            raise AgentError(code, response.status_code, f"{address}: {message}")
        return response

    async def status(self, device) -> dict:
        return (await self._request("GET", device, "/v1/status")).json()

    async def metrics(self, device) -> str:
        return (await self._request("GET", device, "/metrics")).text

    async def has_blob(self, device, digest: str) -> bool:
        return (await self._request("HEAD", device, f"/v1/blobs/{digest}")).status_code == 200

    async def put_blob(self, device, digest: str, path) -> dict:
        size = os.path.getsize(path)

        async def body():
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        return (await self._request("PUT", device, f"/v1/blobs/{digest}", content=body(),
                                    headers={"X-Edgegate-Size": str(size)})).json()

    async def deploy(self, device, body: dict) -> dict:
        return (await self._request("POST", device, "/v1/deploy", json=body)).json()

    async def deployment(self, device, deployment_id: str) -> dict:
        return (await self._request("GET", device, f"/v1/deployments/{deployment_id}")).json()

    async def rollback(self, device, body: dict) -> dict:
        return (await self._request("POST", device, "/v1/rollback", json=body)).json()
