"""The agent's config file (TOML, read with the standard library's tomllib).

    device_id = "dev-1"                 # required; rollback directives name it
    device_type = "qcs6490"             # required; a release's `compatible` list must hold it (or be empty)
    cohorts = ["canary"]                # rollback directives may name a cohort instead of the device
    state_dir = "state"                 # required; relative paths are relative to this file
    listen = "127.0.0.1:8443"           # host:port ([::1]:8443 for IPv6)
    warmup = 3                          # warm-up inferences before a new model serves
    require_evidence = true             # refuse releases published without evidence (NO_EVIDENCE)
    threads = 1                         # ONNX Runtime intra-op threads per session

    [tls]                               # required: the device's server certificate, and the fleet CA
    cert = "device.crt"                 # that signs the client certificates it accepts
    key = "device.key"
    client_ca = "fleet-ca.crt"

    [trust]
    publisher_keys = ["publisher.pem"]  # `edgegate keys export` output (PEM or base64)
    revocations = [{key_id = "eg-0123456789abcdef", revoked_at = "2026-01-01T00:00:00Z"}]

    [limits]                            # all optional
    max_json_bytes = 1048576            # JSON request bodies
    max_blob_bytes = 524288000          # one uploaded blob
    body_timeout_s = 30                 # a body that stalls this long is cut (REQUEST_TIMEOUT)
    replay_window_s = 300               # a deploy's issued_at must be within this of the device clock
    concurrency = 64                    # connections served at once; more get 503

    [testing]                           # a testing aid, never for production
    inject_latency_ms = 0               # added to every inference, warm-up included (a slow canary)

Every error names the file and the field. Unknown keys are refused, so a typo never goes unnoticed.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import InvalidInput
from ..evidence import dsse

_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}\Z")
_TOP = {"device_id", "device_type", "cohorts", "state_dir", "listen", "warmup", "require_evidence", "threads",
        "tls", "trust", "limits", "testing"}
_LIMITS = {"max_json_bytes": 1 << 20, "max_blob_bytes": 500 << 20, "body_timeout_s": 30, "replay_window_s": 300,
           "concurrency": 64}


@dataclass(frozen=True)
class AgentConfig:
    source: Path
    device_id: str
    device_type: str
    state_dir: Path
    tls_cert: Path
    tls_key: Path
    client_ca: Path
    trusted_keys: dict  # dsse.TrustedKeys: key id -> (raw public key, revoked_at or None)
    cohorts: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8443
    warmup: int = 3
    require_evidence: bool = True
    threads: int = 1
    limits: dict = field(default_factory=lambda: dict(_LIMITS))
    inject_latency_ms: float = 0.0


class _Reader:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, problem: str) -> InvalidInput:
        return InvalidInput(f"{self.path}: {key} {problem}", path=str(self.path), field=key,
                            hint="see `edgegate agent serve --help` and the README's Edge agent section")

    def table(self, doc: dict, key: str, allowed: set[str], required: bool) -> dict:
        value = doc.get(key, None if required else {})
        if not isinstance(value, dict):
            raise self.fail(key, "is missing (a [" + key + "] table is required)" if value is None
                            else "must be a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}" if key else unknown[0], f"is not a known setting (known: "
                                                                           f"{', '.join(sorted(allowed))})")
        return value

    def text(self, doc: dict, key: str, where: str, default: str | None = None) -> str:
        value = doc.get(key, default)
        if not isinstance(value, str) or not _ID_RE.match(value):
            raise self.fail(where, "is missing" if value is None else "must be a printable string without spaces")
        return value

    def number(self, doc: dict, key: str, where: str, default, low: float) -> float:
        value = doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            raise self.fail(where, f"must be a number >= {low}")
        return value

    def file(self, doc: dict, key: str, where: str, *, must_exist: bool = True) -> Path:
        value = doc.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(where, "is missing (a path)")
        path = (self.path.parent / value).resolve()
        if must_exist and not path.is_file():
            raise self.fail(where, f"names {path}, which is not a file")
        return path


def _listen(reader: _Reader, value) -> tuple[str, int]:
    host, _, port = (value or "").rpartition(":") if isinstance(value, str) else ("", "", "")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise reader.fail("listen", f"is {value!r}, expected host:port (e.g. 0.0.0.0:8443 or [::1]:8443)")
    return host, int(port)


def _trusted_keys(reader: _Reader, trust: dict) -> dict:
    keys = {}
    paths = trust.get("publisher_keys", [])
    if not isinstance(paths, list) or not paths:
        raise reader.fail("trust.publisher_keys", "must list at least one public key file (`edgegate keys export`)")
    for i, _ in enumerate(paths):
        key_id, raw = dsse.read_public_key_file(reader.file({"p": paths[i]}, "p", f"trust.publisher_keys[{i}]"))
        keys[key_id] = (raw, None)
    revocations = trust.get("revocations", [])
    if not isinstance(revocations, list):
        raise reader.fail("trust.revocations", "must be a list of {key_id, revoked_at} tables")
    for i, entry in enumerate(revocations):
        where = f"trust.revocations[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"key_id", "revoked_at"}:
            raise reader.fail(where, "must be a table with exactly key_id and revoked_at")
        when = entry["revoked_at"]
        moment = when if isinstance(when, datetime) else dsse.parse_utc(when, what=f"{reader.path}: {where}.revoked_at")
        if moment.tzinfo is None:
            raise reader.fail(f"{where}.revoked_at", "needs a time zone (e.g. 2026-01-01T00:00:00Z)")
        if entry["key_id"] in keys:  # a revocation of a key not listed changes nothing: it is untrusted anyway
            keys[entry["key_id"]] = (keys[entry["key_id"]][0], dsse.format_utc(moment))
    return keys


def load_config(path: Path | str) -> AgentConfig:
    """Read and check an agent config file. Raises InvalidInput naming the file and the field."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the agent config ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: not valid TOML ({exc})") from None
    reader = _Reader(path)
    reader.table({"": doc}, "", _TOP, True)
    tls = reader.table(doc, "tls", {"cert", "key", "client_ca"}, True)
    trust = reader.table(doc, "trust", {"publisher_keys", "revocations"}, True)
    limits = reader.table(doc, "limits", set(_LIMITS), False)
    testing = reader.table(doc, "testing", {"inject_latency_ms"}, False)
    cohorts = doc.get("cohorts", [])
    if not isinstance(cohorts, list) or not all(isinstance(c, str) and _ID_RE.match(c) for c in cohorts):
        raise reader.fail("cohorts", "must be a list of names")
    require_evidence = doc.get("require_evidence", True)
    if not isinstance(require_evidence, bool):
        raise reader.fail("require_evidence", "must be true or false")
    host, port = _listen(reader, doc.get("listen", "127.0.0.1:8443"))
    return AgentConfig(
        source=path, device_id=reader.text(doc, "device_id", "device_id"),
        device_type=reader.text(doc, "device_type", "device_type"),
        state_dir=reader.file(doc, "state_dir", "state_dir", must_exist=False),
        tls_cert=reader.file(tls, "cert", "tls.cert"), tls_key=reader.file(tls, "key", "tls.key"),
        client_ca=reader.file(tls, "client_ca", "tls.client_ca"), trusted_keys=_trusted_keys(reader, trust),
        cohorts=tuple(cohorts), host=host, port=port, require_evidence=require_evidence,
        warmup=int(reader.number(doc, "warmup", "warmup", 3, 0)),
        threads=int(reader.number(doc, "threads", "threads", 1, 1)),
        limits={k: reader.number(limits, k, f"limits.{k}", default, 1) for k, default in _LIMITS.items()},
        inject_latency_ms=float(reader.number(testing, "inject_latency_ms", "testing.inject_latency_ms", 0, 0)))
