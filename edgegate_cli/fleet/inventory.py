"""The fleet inventory (SPEC §10.2): `fleet import` (CSV or JSON, idempotent), `tag`, `remove`.

A fleet file lists devices with `id`, `address` (https://HOST:PORT of its agent), `type`, optional
`region` and `tags`. CSV: a header row with those columns (tags as `k=v;k=v`); JSON: a list of objects
(tags as an object). Every row is checked before anything is written; an error names the file and the
line (CSV) or the index (JSON). Importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from ..errors import InvalidInput
from .devices import Device, get_device, upsert_device

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
VALUE_RE = re.compile(r"^[A-Za-z0-9._:@/+-]{1,128}\Z")
ADDRESS_RE = re.compile(r"^https://[A-Za-z0-9.\-\[\]:]+:\d{1,5}\Z")
COLUMNS = {"id", "address", "type", "region", "tags"}


class DeviceInUse(InvalidInput):
    code = "DEVICE_IN_USE"


def parse_tags(items, where: str) -> dict[str, str]:
    """`k=v` strings (or a dict) -> tags; InvalidInput naming `where`."""
    pairs = items.items() if isinstance(items, dict) else [
        (i.partition("=")[0], i.partition("=")[2] if "=" in i else None) for i in items]
    tags = {}
    for key, value in pairs:
        if not isinstance(key, str) or not TAG_RE.match(key) or not isinstance(value, str) or not VALUE_RE.match(value):
            raise InvalidInput(f"{where}: tag {str(key)[:40]!r}={str(value)[:40]!r} is not NAME=VALUE (letters, "
                               "digits and ._-; values also :@/+)")
        tags[key] = value
    return tags


def make_device(fields: dict, where: str) -> Device:
    """A Device from one row's fields, every value checked (InvalidInput names `where` and the field)."""
    def need(name, regex, what):
        value = fields.get(name)
        if not isinstance(value, str) or not regex.match(value):
            raise InvalidInput(f"{where}: {name} is {str(value)[:60]!r}, expected {what}",
                               hint="see the README's Fleet section for the file format")
        return value

    unknown = sorted(set(fields) - COLUMNS)
    if unknown:
        raise InvalidInput(f"{where}: unknown column {unknown[0][:40]!r} (known: {', '.join(sorted(COLUMNS))})")
    region = fields.get("region") or None
    if region is not None:
        need("region", VALUE_RE, "a region name")
    raw_tags = fields.get("tags") or {}
    if isinstance(raw_tags, str):
        raw_tags = [t for t in raw_tags.split(";") if t]
    if not isinstance(raw_tags, dict | list):
        raise InvalidInput(f"{where}: tags must be an object of name -> value")
    return Device(need("id", ID_RE, "a device id (letters, digits, ._-)"),
                  need("address", ADDRESS_RE, "https://HOST:PORT"),
                  need("type", VALUE_RE, "a device type"), region, parse_tags(raw_tags, where))


def _json_rows(path: Path, text: str) -> list[tuple[str, dict]]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, list):
        raise InvalidInput(f"{path}: expected a JSON list of device objects")
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise InvalidInput(f"{path}: [{i}] is not an object")
    return [(f"{path}: [{i}]", item) for i, item in enumerate(doc)]


def _csv_rows(path: Path, text: str) -> list[tuple[str, dict]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"id", "address", "type"} <= set(reader.fieldnames):
        raise InvalidInput(f"{path}: line 1: the header must name id, address and type (and may name region, tags)")
    rows = []
    for row in reader:
        where = f"{path}: line {reader.line_num}"
        if None in row or any(v is None for v in row.values()):
            raise InvalidInput(f"{where}: expected {len(reader.fieldnames)} columns")
        rows.append((where, {k: v.strip() for k, v in row.items()}))
    return rows


def read_fleet_file(path: Path) -> list[Device]:
    """Every device of a CSV or JSON fleet file, checked; duplicate ids are refused."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the fleet file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None
    rows = _json_rows(path, text) if path.suffix.lower() == ".json" else _csv_rows(path, text)
    devices, seen = [], {}
    for where, fields in rows:
        device = make_device(fields, where)
        if device.device_id in seen:
            raise InvalidInput(f"{where}: duplicate id {device.device_id!r} (first at {seen[device.device_id]})")
        seen[device.device_id] = where.rpartition(": ")[2]
        devices.append(device)
    return devices


def import_devices(db, devices: list[Device]) -> dict:
    """Upsert every device in one transaction: {added, changed, unchanged}."""
    existing = {r["device_id"] for r in db.query("SELECT device_id FROM devices")}
    counts = {"added": 0, "changed": 0, "unchanged": 0}
    with db.atomic():
        for device in devices:
            changed = upsert_device(db, device)
            key = "unchanged" if not changed else "changed" if device.device_id in existing else "added"
            counts[key] += 1
    return counts


def tag_device(db, device_id: str, set_tags: dict[str, str], remove: list[str]) -> Device:
    device = get_device(db, device_id)
    tags = {k: v for k, v in device.tags.items() if k not in remove} | set_tags
    upsert_device(db, Device(device.device_id, device.address, device.device_type, device.region, tags))
    return get_device(db, device_id)


def remove_device(db, device_id: str) -> None:
    """Forget a device; refused (DEVICE_IN_USE) while an unfinished rollout targets it."""
    get_device(db, device_id)
    if "rollout_targets" in db.table_names():
        busy = [r["id"] for r in db.query(
            "SELECT r.id FROM rollouts r JOIN rollout_targets t ON t.rollout_id = r.id "
            "WHERE t.device_id = ? AND r.finished_at IS NULL ORDER BY r.id", [device_id])]
        if busy:
            raise DeviceInUse(f"device {device_id} is a target of unfinished rollout {busy[0]}",
                              hint=f"finish or abort it first: edgegate rollout abort {busy[0]}")
    with db.atomic():
        db["devices"].delete(device_id)
