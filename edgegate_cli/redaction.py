"""Masks known secret values (the AI Hub token, key seeds) in any text EdgeGate writes.

Secrets are registered once, where they are read (config.py, signing.py); every printer and every
stored error detail passes through `redact`.
"""

from __future__ import annotations

_SECRETS: set[str] = set()
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember `value` so `redact` masks it. Short values are ignored to avoid masking common text."""
    if value and len(value) >= 8:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Return `text` with every registered secret replaced by ***."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_obj(obj):
    """Redact every string inside a JSON-like structure."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact_obj(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj
