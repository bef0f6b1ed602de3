"""organizations collection."""

from __future__ import annotations

from indexes import UNIQUE_FIELDS

from enterprise.repositories.base import Repository


class OrganizationsRepository(Repository):
    collection_name = "organizations"
    unique_fields = UNIQUE_FIELDS["organizations"]
