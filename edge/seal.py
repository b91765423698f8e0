"""A kit artifact's content digest: any change to a file the kit wrote is found before a runtime reads it.

The converter writes the record with `"content_sha256":"000…0"` (64 zeros), hashes the whole finished file,
and puts the digest in place of the zeros. The lengths are equal, so no offset in the FlatBuffer or the protobuf
moves. To check, the edge side zeroes those 64 characters again and hashes: any flipped bit anywhere in the file
(weights, graph, record, packed labels, the digest itself) gives another digest. A record of
`metadata_version` >= SEALED_SINCE without the field is damaged too, so corrupting the key does not turn a kit
file into an unchecked one.
"""

from __future__ import annotations

import hashlib
import re

from edge.errors import ModelFileError

FIELD = "content_sha256"
SEALED_SINCE = 2                          # the first metadata_version whose records carry the digest
PLACEHOLDER = "0" * 64
_PATTERN = re.compile(rb'"' + FIELD.encode() + rb'":"([0-9a-f]{64})"')


def seal(data: bytes) -> tuple[bytes, str]:
    """The artifact bytes with its record's placeholder replaced by the digest of the whole file, and the digest."""
    found = list(_PATTERN.finditer(data))
    placeholders = [m for m in found if m.group(1) == PLACEHOLDER.encode()]
    if len(placeholders) != 1:
        raise ValueError(f"the record must hold exactly one {FIELD} placeholder, found {len(placeholders)}")
    start, end = placeholders[0].span(1)
    digest = hashlib.sha256(data).hexdigest()
    return data[:start] + digest.encode() + data[end:], digest


def verify(data: bytes, name: str, record: dict | None) -> bool:
    """True when the file's record carries its digest and the digest matches; False for a file whose record makes no
    such claim (written by another tool or an older kit, or with no kit record at all). ModelFileError naming the file
    as damaged when the bytes changed, or when a record that must carry the digest does not."""
    if not isinstance(record, dict):
        return False
    expected = record.get(FIELD)
    version = record.get("metadata_version")
    if expected is None:
        if isinstance(version, int) and version >= SEALED_SINCE:
            raise _damaged(name, "its record's content digest is missing or unreadable")
        return False
    if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise _damaged(name, "its record's content digest is not a SHA-256")
    where = [m.span(1) for m in _PATTERN.finditer(data) if m.group(1).decode() == expected]
    if len(where) != 1:
        raise _damaged(name, f"its record's content digest appears {len(where)} times in the file, where the kit "
                             "writes it once")
    start, end = where[0]
    digest = hashlib.sha256(memoryview(data)[:start])
    digest.update(PLACEHOLDER.encode())
    digest.update(memoryview(data)[end:])
    if digest.hexdigest() != expected:
        raise _damaged(name, "its bytes differ from what the converter wrote and recorded in its content digest")
    return True


def _damaged(name: str, why: str) -> ModelFileError:
    return ModelFileError(f"{name}: the file is damaged ({why}; a copy went wrong, or another tool changed it after "
                          "conversion); copy it again or re-convert it")
