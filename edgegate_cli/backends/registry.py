"""Which backends exist and how to get one: the only module that imports the backends themselves, so
they can import `base` without a circle."""

from __future__ import annotations

from .base import Backend, DeviceInfo


def get_backend(name: str, ctx=None, ws=None, devices: list[str] | None = None) -> Backend:
    """The backend called `name`, working for invocation `ctx` (default: the workspace's, else a fresh
    Context); InvalidInput for an unknown one.

    `ws` (a Workspace) gives qaihub its state cache of AI Hub ids; `devices` are the AI Hub devices a
    qaihub probe runs on (the local backend takes none).
    """
    from ..context import Context
    from ..errors import InvalidInput

    ctx = ctx or (ws.ctx if ws is not None else Context())
    if name == "local":
        if devices:
            raise InvalidInput("--device picks AI Hub devices for `probe --backend qaihub`; the local backend "
                               "probes this machine (local:cpu)")
        from .local.backend import LocalBackend

        return LocalBackend(ctx)
    if name == "qaihub":
        from .qaihub.backend import QAIHubBackend

        return QAIHubBackend(ctx, state_path=ws.home.db_path if ws is not None else None, probe_devices=devices)
    raise InvalidInput(f"unknown backend {name!r} (known: local, qaihub)")


def list_devices(name: str, ctx=None) -> list[DeviceInfo]:
    """Every device backend `name` can run on (AI Hub's live device list for qaihub)."""
    backend = get_backend(name, ctx)
    if hasattr(backend, "list_devices"):
        return backend.list_devices()
    return [DeviceInfo(name=d, frameworks=["onnx"]) for d in backend.available_devices()]
