"""organizations collection."""

from __future__ import annotations

from enterprise.repositories.base import Repository
from indexes import UNIQUE_FIELDS


class OrganizationsRepository(Repository):
    collection_name = "organizations"
    unique_fields = UNIQUE_FIELDS["organizations"]
