"""Reading the files a user names, safely: only regular files (a FIFO would block forever, a device would
never end), within a size limit checked before reading, and every OS failure (a missing file, a name too
long, no permission) as one InvalidInput line naming the file instead of a traceback.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import InvalidInput, LimitExceeded

MIB = 1 << 20
MAX_DOCUMENT_BYTES = 16 * MIB  # a pipeline, PromptPack, Genie profile, key or metadata file

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symlink"}


def kind_of(mode: int) -> str:
    """What a stat mode is, for a message: "a FIFO", "a directory", "a regular file"."""
    return _KINDS.get(stat.S_IFMT(mode), "a regular file" if stat.S_ISREG(mode) else "not a regular file")


def os_reason(exc: OSError) -> str:
    """A one-line reason for an OSError, e.g. "file name too long", "no such file or directory"."""
    if exc.errno == errno.ENOENT:
        return "no such file or directory"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return (exc.strerror or str(exc)).lower()


def path_error(path: Path | str, exc: OSError, *, where: str = "") -> InvalidInput:
    """The InvalidInput to raise for an OSError on a path the user named (`where` prefixes it, e.g. a field)."""
    prefix = f"{where}: " if where else ""
    return InvalidInput(f"{prefix}{path}: {os_reason(exc)}", path=str(path))


def stat_path(path: Path | str, *, where: str = "") -> os.stat_result | None:
    """os.stat(path), or None when it does not exist; other OS failures raise InvalidInput."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except ValueError:  # a NUL character: no file can have that name
        raise InvalidInput(f"{f'{where}: ' if where else ''}{str(path)!r}: a path cannot contain a NUL "
                           "character") from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            return None
        raise path_error(path, exc, where=where) from None


def require_regular(path: Path | str, *, where: str = "") -> os.stat_result:
    """The stat of `path`, which must be an existing regular file; InvalidInput otherwise."""
    prefix = f"{where}: " if where else ""
    st = stat_path(path, where=where)
    if st is None:
        raise InvalidInput(f"{prefix}{path}: no such file", path=str(path))
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput(f"{prefix}{path}: is {kind_of(st.st_mode)}, not a regular file", path=str(path))
    return st


def read_regular(path: Path | str, *, max_bytes: int = MAX_DOCUMENT_BYTES, where: str = "") -> bytes:
    """The bytes of the regular file `path`, at most `max_bytes` (LimitExceeded past it, checked before
    reading). Opened without blocking, so a FIFO is refused rather than waited on. InvalidInput otherwise."""
    prefix = f"{where}: " if where else ""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except ValueError:
        raise InvalidInput(f"{prefix}{str(path)!r}: a path cannot contain a NUL character") from None
    except FileNotFoundError:
        raise InvalidInput(f"{prefix}{path}: no such file", path=str(path)) from None
    except OSError as exc:
        raise path_error(path, exc, where=where) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"{prefix}{path}: is {kind_of(st.st_mode)}, not a regular file", path=str(path))
        if st.st_size > max_bytes:
            raise LimitExceeded(f"{prefix}{path}: {st.st_size:,} bytes, over the limit of {max_bytes:,} bytes",
                                path=str(path))
        chunks, size = [], 0
        while chunk := os.read(fd, min(MIB, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:  # it grew while being read
                raise LimitExceeded(f"{prefix}{path}: over the limit of {max_bytes:,} bytes", path=str(path))
        return b"".join(chunks)
    except OSError as exc:
        raise path_error(path, exc, where=where) from None
    finally:
        os.close(fd)


def check_output_file(path: Path | str, *, option: str) -> Path:
    """A file EdgeGate will write later (`--bundle`, `--junit`, `--out`): refused now, naming `option`,
    when its directory does not exist or it names a directory, so nothing is measured in vain."""
    target = Path(path)
    parent = stat_path(target.parent if str(target.parent) else ".", where=option)
    if parent is None or not stat.S_ISDIR(parent.st_mode):
        raise InvalidInput(f"{option} {target}: directory {target.parent} does not exist",
                           hint="create the directory first, or give another path")
    st = stat_path(target, where=option)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{option} {target}: is a directory; give a file path")
    if len(target.name.encode()) > 255:
        raise InvalidInput(f"{option} {target}: file name too long")
    return target


def is_regular_file(path: Path | str) -> bool:
    """Is `path` an existing regular file? False for anything else, including names the OS refuses (too long)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
