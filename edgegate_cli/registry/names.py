"""Release names, semver versions and `NAME@VERSION` references, checked before anything is stored.

Names and channels follow the manifest grammar (`signed_json.NAME_RE`: `[a-z0-9][a-z0-9._-]{0,63}`, so
no path characters); versions are semver 2.0, parsed and ordered by the `semver` library. Two versions
of one name may not have the same precedence (`1.0.0+a` and `1.0.0+b`): agents order by precedence.
"""

from __future__ import annotations

import re

from ..errors import InvalidInput
from ..evidence.signed_json import NAME_RE, show

DEVICE_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def check_name(value: str, what: str = "--name") -> str:
    """A release name (or channel): lowercase letters, digits and ._- ; InvalidInput naming `what`."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidInput(f"{what} is {show(value)}: use 1-64 of a-z, 0-9, '.', '_', '-', starting with a "
                           "letter or digit (no '/', spaces or upper case)", field=what)
    return value


def parse_version(value: str, what: str = "--version"):
    """A semver 2.0 version (semver.Version); InvalidInput naming `what` otherwise (e.g. 1.2, v1.2.3)."""
    import semver

    try:
        return semver.Version.parse(value)
    except (ValueError, TypeError):
        raise InvalidInput(f"{what} is {show(value)}, not a semantic version MAJOR.MINOR.PATCH[-PRERELEASE]"
                           "[+BUILD] (e.g. 1.2.0, 2.0.0-rc.1; no leading 'v')", field=what) from None


def check_version(value: str, what: str = "--version") -> str:
    parse_version(value, what)
    return value


def check_device_types(values: list[str] | tuple[str, ...]) -> list[str]:
    """`--compatible` values: device type names, sorted and without duplicates (deterministic bytes)."""
    for value in values:
        if not DEVICE_TYPE_RE.match(value):
            raise InvalidInput(f"--compatible is {show(value)}: a device type is 1-64 of letters, digits, "
                               "'.', '_', '-' (e.g. qcs6490)", field="--compatible")
    return sorted(set(values))


def parse_ref(ref: str, *, version_required: bool = False) -> tuple[str, str | None]:
    """`NAME@VERSION` -> (name, version); `NAME` -> (name, None) unless `version_required`."""
    name, sep, version = ref.partition("@") if isinstance(ref, str) else ("", "", "")
    check_name(name, "release name")
    if not sep:
        if version_required:
            raise InvalidInput(f"{show(ref)} names no version: give NAME@VERSION (e.g. {name}@1.0.0)")
        return name, None
    return name, check_version(version, "release version")


def newest(versions: list[str]) -> list[str]:
    """`versions` in semver order, highest first."""
    return sorted(versions, key=parse_version, reverse=True)


def same_precedence(version: str, others: list[str]) -> str | None:
    """The first of `others` that differs from `version` only in build metadata, or None."""
    mine = parse_version(version)
    return next((o for o in others if o != version and parse_version(o).compare(mine) == 0), None)
