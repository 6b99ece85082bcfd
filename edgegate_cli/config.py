"""Backend settings from the environment (STYLE 2: core modules read env vars only here and in home.py).

The AI Hub client is configured from, in order:
  * the token: `QAIHUB_API_TOKEN`, else the SDK's own `client.ini` (`$QAIHUB_CLIENT_INI`, else
    `~/.qai_hub/client.ini`, located by the SDK's own `get_config_path`). The SDK itself reads no
    token variable, so EdgeGate builds its `ClientConfig`. The token is registered with the redactor
    the moment it is read, and never stored.
  * the URL: `--qaihub-api-url` > `EDGEGATE_QAIHUB_API_URL` > the client.ini's `api_url` > AI Hub (the
    client.ini's URLs and `default_project` apply whichever way the token came).
  * the first poll interval: `EDGEGATE_QAIHUB_POLL_S` (default 5 s; doubles per poll, but at most 10 % of
    the time already polled and at most 60 s: backends/qaihub_polling.py).
The signing key for CI: `EDGEGATE_SIGNING_KEY` (a base64 Ed25519 seed), registered as a secret on read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .context import Context
from .errors import InvalidInput

TOKEN_ENV = "QAIHUB_API_TOKEN"
URL_ENV = "EDGEGATE_QAIHUB_API_URL"
POLL_ENV = "EDGEGATE_QAIHUB_POLL_S"
DEFAULT_API_URL = "https://workbench.aihub.qualcomm.com"
DEFAULT_POLL_S = 5.0
MAX_POLL_S = 600.0  # the largest first poll interval EDGEGATE_QAIHUB_POLL_S accepts (SPEC §5: 10 minutes)


@dataclass(frozen=True)
class QAIHubSettings:
    api_token: str = field(repr=False)
    api_url: str
    web_url: str
    token_source: str  # "QAIHUB_API_TOKEN" or the client.ini path: named in messages, never the token
    poll_s: float
    redact: Callable[[str], str] = field(repr=False, default=lambda text: text)  # masks the token and other secrets
    default_project: str | None = None  # the client.ini's default_project: jobs and models go to that project


def _normalize_url(url: str, origin: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"{origin}: {url!r} is not an http(s) URL (e.g. {DEFAULT_API_URL})")
    # The SDK urljoins "api/v1/..." onto the URL: a path without a trailing slash would lose its last segment.
    return url.strip() if not parts.path or url.strip().endswith("/") else url.strip() + "/"


def _poll_s() -> float:
    raw = os.environ.get(POLL_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_POLL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_POLL_S:
        raise InvalidInput(f"{POLL_ENV}={raw!r}: the first poll interval must be a number of seconds in "
                           f"(0, {MAX_POLL_S:g}]")
    return value


def _ini_extras() -> dict:
    """api_url, web_url and default_project from the SDK's client.ini when one exists (read leniently: with
    QAIHUB_API_TOKEN set, the file needs no token)."""
    import configparser

    from qai_hub import api_utils

    parser = configparser.ConfigParser()
    try:
        parser.read([api_utils.get_config_path()])
    except configparser.Error:
        return {}
    section = parser["api"] if parser.has_section("api") else {}
    return {k: section[k].strip() for k in ("api_url", "web_url", "default_project") if (section.get(k) or "").strip()}


def _from_client_ini(ctx: Context) -> tuple[str, str, str, str]:
    """(token, api_url, web_url, path) from the SDK's client.ini; InvalidInput when there is none."""
    from qai_hub import api_utils

    path = api_utils.get_config_path()
    if not os.path.exists(path):
        raise InvalidInput(
            f"no AI Hub API token: {TOKEN_ENV} is not set and there is no {path}",
            hint=f"export {TOKEN_ENV}=<your token> (AI Hub: Account > Settings > API Token), or run "
                 "`qai-hub configure --api_token <your token>` to write the SDK's client.ini")
    try:
        config = api_utils.load_api_config_from_file(path)
    except Exception:  # the SDK raises APIException for a missing [api] key
        raise InvalidInput(f"{path}: the [api] section needs api_token, api_url and web_url",
                           hint=f"rewrite it with `qai-hub configure --api_token <your token>`, or set "
                                f"{TOKEN_ENV}") from None
    ctx.secrets.register(config.api_token)
    return config.api_token, config.api_url, config.web_url, path


def qaihub_settings(ctx: Context) -> QAIHubSettings:
    """The AI Hub client settings; InvalidInput when no token is configured or a value is malformed.

    The token is registered with `ctx.secrets` the moment it is read; `ctx.settings.qaihub_api_url`
    (--qaihub-api-url) outranks the environment."""
    poll_s = _poll_s()
    token = (os.environ.get(TOKEN_ENV) or "").strip()
    extras = _ini_extras()
    if token:
        ctx.secrets.register(token)
        api_url = extras.get("api_url", DEFAULT_API_URL)
        web_url = extras.get("web_url", api_url)
        source = TOKEN_ENV
    else:
        token, api_url, web_url, source = _from_client_ini(ctx)
    flag = ctx.settings.qaihub_api_url
    override = flag or os.environ.get(URL_ENV)
    if override:
        origin = "--qaihub-api-url" if flag else URL_ENV
        api_url = web_url = _normalize_url(override, origin)
    return QAIHubSettings(api_token=token, api_url=api_url, web_url=web_url, token_source=source, poll_s=poll_s,
                          redact=ctx.secrets.redact, default_project=extras.get("default_project"))


SIGNING_KEY_ENV = "EDGEGATE_SIGNING_KEY"


def signing_key_text(ctx: Context) -> str | None:
    """EDGEGATE_SIGNING_KEY's value (masked in all of this invocation's output from now on), or None."""
    raw = os.environ.get(SIGNING_KEY_ENV)
    ctx.secrets.register(raw)
    return raw or None
