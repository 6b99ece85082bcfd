"""Serve the agent: uvicorn (one process, one worker, the h11 protocol) with TLS whose client
certificates are **required** and checked against the fleet CA (`ssl.CERT_REQUIRED`): a client
without one, or with one from another CA, never completes the handshake.
"""

from __future__ import annotations

import logging
import socket
import ssl

from ..context import Context
from ..errors import InvalidInput
from .config import AgentConfig


def server_ssl_context(cfg: AgentConfig) -> ssl.SSLContext:
    """TLS 1.2+ server context: the device certificate, and client certificates required from the fleet CA.

    Raises InvalidInput naming the config field whose file does not load.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise InvalidInput(f"{cfg.source}: tls.cert / tls.key ({cfg.tls_cert}, {cfg.tls_key}) do not load as a "
                           f"certificate and its private key ({exc})") from None
    try:
        ctx.load_verify_locations(cafile=cfg.client_ca)
    except (ssl.SSLError, OSError) as exc:
        raise InvalidInput(f"{cfg.source}: tls.client_ca ({cfg.client_ca}) is not a PEM CA certificate ({exc})") \
            from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def bind(cfg: AgentConfig) -> socket.socket:
    """The listening socket for `listen` (bound here, so a busy port is a one-line error, not a traceback)."""
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"{cfg.source}: listen {cfg.host}:{cfg.port}: cannot listen there ({exc.strerror})",
                           field="listen", hint="another process may hold the port; choose another") from None
    sock.set_inheritable(True)
    return sock


def serve(cfg: AgentConfig, ctx: Context, *, log_level: str = "info", channel=None, poll_s: float = 60.0) -> None:
    """Run the agent until SIGINT/SIGTERM; with `channel` (a download.channel.ChannelLocation), also poll
    it every `poll_s` seconds (pull mode). Raises InvalidInput for a bad TLS setup, a state directory it
    cannot use, or an address it cannot listen on; StoreCredentialsMissing for an s3:// channel without
    credentials."""
    import uvicorn

    from .app import create_app
    from .runtime import Agent

    context = server_ssl_context(cfg)
    if channel is not None:
        from .pull_loop import check_pull

        check_pull(channel, cfg.device_id)
    sock = bind(cfg)
    agent = Agent(cfg, ctx)
    background = None
    if channel is not None:
        from .pull_loop import open_pull

        background = open_pull(agent, channel, poll_s)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = uvicorn.Config(
        create_app(agent, background), host=cfg.host, port=cfg.port, workers=1, http="h11", lifespan="on",
        log_level=log_level, access_log=False, limit_concurrency=int(cfg.limits["concurrency"]),
        timeout_keep_alive=5, ssl_certfile=str(cfg.tls_cert), ssl_keyfile=str(cfg.tls_key),
        ssl_context_factory=lambda _config, _default: context)
    uvicorn.Server(config).run(sockets=[sock])
