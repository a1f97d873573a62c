"""Read members of an untrusted zip archive with bounds, whatever its headers claim.

A zip's headers are the sender's word: the sizes may lie and the compression method may be one
(bzip2, lzma) whose decompressor allocates far more than the compressed bytes suggest (a 1 KB
artifact read with ``zf.read`` reached 2.1 GB). So only STORED and DEFLATED entries are accepted,
the number of entries is bounded, and each member is decompressed in chunks with a cap on its
size, on the total and on its ratio to its compressed size; nothing beyond a cap is produced.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from modelci.errors import DataError

ACCEPTED = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
CHUNK = 64 * 1024


class ZipRefused(DataError):  # noqa: N818 - reads as what happened: the zip was refused
    """The archive breaks a bound or is not a readable zip; the message names the entry."""


@dataclass(frozen=True)
class Bounds:
    max_entries: int = 64
    max_member: int = 1024 * 1024
    max_total: int = 4 * 1024 * 1024
    # uncompressed / compressed, checked once a member passes ``ratio_floor`` bytes (a small
    # JSON file may compress very well and still be harmless)
    max_ratio: int = 100
    ratio_floor: int = 64 * 1024


# A skops model file: one member per array (thousands for a large forest); arrays of zeros
# compress far beyond 100 times, so the ratio is left to the caps (deflate's own limit is about
# 1,032 times). What matters most is that nothing but stored and deflated is decompressed.
MODEL_BOUNDS = Bounds(
    max_entries=100_000,
    max_member=2 * 1024**3,
    max_total=4 * 1024**3,
    max_ratio=1_100,
    ratio_floor=1024 * 1024,
)


def read_members(
    data: bytes, names: Iterable[str] | None = None, bounds: Bounds = Bounds()
) -> dict[str, bytes]:
    """The named members of the zip ``data`` that it holds (all of them when ``names`` is
    None), each read under ``bounds``."""
    found: dict[str, bytes] = {}
    _each(data, names, bounds, found.__setitem__)
    return found


def check_archive(data: bytes, bounds: Bounds = MODEL_BOUNDS) -> None:
    """Decompress every member of ``data`` under ``bounds`` keeping nothing, so that a reader
    without bounds (skops) may then open it; raises ZipRefused."""
    _each(data, None, bounds, None)


def _each(
    data: bytes,
    names: Iterable[str] | None,
    bounds: Bounds,
    keep: Callable[[str, bytes], None] | None,
) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > bounds.max_entries:
                raise ZipRefused(f"{len(infos)} entries, more than {bounds.max_entries}")
            for info in infos:
                if info.compress_type not in ACCEPTED:
                    raise ZipRefused(
                        f"{info.filename!r}: compression method {info.compress_type} "
                        "(only stored and deflated are accepted)"
                    )
            by_name = {info.filename: info for info in infos}
            total = 0
            for name in by_name if names is None else names:
                if name in by_name:
                    total += _read(archive, by_name[name], bounds, bounds.max_total - total, keep)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as error:
        raise ZipRefused(f"not a readable zip: {error}") from None


def _read(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    bounds: Bounds,
    left: int,
    keep: Callable[[str, bytes], None] | None,
) -> int:
    """Read one member in chunks under the caps; hand it to ``keep``; return its size."""
    cap = min(bounds.max_member, left)
    if info.file_size > cap:
        raise ZipRefused(f"{info.filename!r}: {info.file_size} bytes, more than {cap}")
    parts: list[bytes] = []
    size = 0
    with archive.open(info) as member:
        while chunk := member.read(CHUNK):
            size += len(chunk)
            if size > cap:
                raise ZipRefused(f"{info.filename!r}: more than {cap} bytes")
            if size > bounds.ratio_floor and size > bounds.max_ratio * max(info.compress_size, 1):
                raise ZipRefused(
                    f"{info.filename!r}: expands more than {bounds.max_ratio} times its "
                    f"{info.compress_size} compressed bytes"
                )
            if keep is not None:
                parts.append(chunk)
    if keep is not None:
        keep(info.filename, b"".join(parts))
    return size
