"""Entity tags (pure). Items: id + version (+ a digest of the selected fields).
Lists: the collection generations plus the normalised query, as a weak validator.
Parsing of incoming header values is the conditional middleware's; this module makes tags
and reads the opaque value of one."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

# Our stored compressed forms carry their content coding in their tag (`"…-br"`).
ENCODING_SUFFIXES = ("-br", "-gzip")


def item_etag(document_id: object, version: int, fields: tuple[str, ...] | None = None) -> str:
    tag = f"{document_id}-{version}"
    if fields is not None:
        tag += "-" + hashlib.blake2s(",".join(fields).encode(), digest_size=4).hexdigest()
    return f'"{tag}"'


def list_etag(material: str) -> str:
    return 'W/"' + hashlib.blake2s(material.encode(), digest_size=12).hexdigest() + '"'


def item_versions(tags: Iterable[str], document_id: object) -> set[int] | None:
    """Strong comparison for If-Match: the versions of `document_id` that the client holds.

    Returns None for `*` (any current representation). Weak tags never match strongly.
    """
    versions: set[int] = set()
    prefix = f"{document_id}-"
    for tag in tags:
        if tag == "*":
            return None
        value = opaque(tag)
        if tag.startswith("W/") or not value.startswith(prefix):
            continue
        version_text = value[len(prefix) :].split("-", 1)[0]
        if version_text.isdigit():
            versions.add(int(version_text))
    return versions


def opaque(tag: str) -> str:
    """The opaque value, ignoring weakness and our content-coding suffix."""
    value = tag[2:] if tag.startswith("W/") else tag
    value = value.strip('"')
    for suffix in ENCODING_SUFFIXES:
        if value.endswith(suffix):
            return value[: -len(suffix)]
    return value
