"""Entity tags (pure). Items: id + version (+ a digest of the selected fields).
Lists: the collection generations plus the normalised query, as a weak validator."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

ENCODING_SUFFIXES = ("-br", "-gzip")


def item_etag(document_id: object, version: int, fields: tuple[str, ...] | None = None) -> str:
    tag = f"{document_id}-{version}"
    if fields is not None:
        tag += "-" + hashlib.blake2s(",".join(fields).encode(), digest_size=4).hexdigest()
    return f'"{tag}"'


def list_etag(material: str) -> str:
    return 'W/"' + hashlib.blake2s(material.encode(), digest_size=12).hexdigest() + '"'


def opaque(tag: str) -> tuple[str, bool]:
    """(opaque value without quotes or encoding suffix, is_weak)."""
    weak = tag.startswith("W/")
    value = tag[2:] if weak else tag
    value = value.strip('"')
    for suffix in ENCODING_SUFFIXES:
        if value.endswith(suffix):
            value = value[: -len(suffix)]
            break
    return value, weak


def parse_header(value: str | None) -> list[str] | None:
    """`If-Match`/`If-None-Match` → list of tags, ["*"], or None when absent/empty."""
    if value is None or not value.strip():
        return None
    if value.strip() == "*":
        return ["*"]
    tags: list[str] = []
    for part in value.split(","):
        part = part.strip()
        if part:
            tags.append(part)
    return tags or None


def weak_match(tags: Iterable[str], current: str) -> bool:
    """RFC 9110 weak comparison (If-None-Match): opaque values equal, weakness ignored."""
    wanted, _ = opaque(current)
    return any(t == "*" or opaque(t)[0] == wanted for t in tags)


def item_versions(tags: Iterable[str], document_id: object) -> set[int] | None:
    """Strong comparison for If-Match: the versions of `document_id` that the client holds.

    Returns None for `*` (any current representation). Weak tags never match strongly.
    """
    versions: set[int] = set()
    prefix = f"{document_id}-"
    for tag in tags:
        if tag == "*":
            return None
        value, weak = opaque(tag)
        if weak or not value.startswith(prefix):
            continue
        version_text = value[len(prefix) :].split("-", 1)[0]
        if version_text.isdigit():
            versions.add(int(version_text))
    return versions
