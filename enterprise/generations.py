"""The names of the generation counters a write bumps and a cached answer depends on.

A cache key embeds the generations its answer was read under (enterprise/cache.py), so a
write that bumps one of them retires every key built on it. Writers (services/base.py) and
readers (the resources' `cache_policy`) must spell each name the same way: both build it
here.

    collection("clinics")                 every clinic: platform-wide lists
    tenant("clinics", organization_id)    one organization's clinics: its lists, its reports
    document("clinics", clinic_id)        one clinic: its item
"""

from __future__ import annotations

from typing import Any


def collection(name: str) -> str:
    return name


def tenant(name: str, organization_id: Any) -> str:
    return f"{name}:{organization_id}"


def document(name: str, document_id: Any) -> str:
    return f"{name}#{document_id}"
