"""Query shapes: what each list/search endpoint asks MongoDB, declared beside its index.

A shape names its Equality, Sort and Range fields (the ESR rule), the projection it sends and
the index that must serve it. `covered` shapes project only index fields, so MongoDB answers
them from the index alone (no FETCH). The contract tier checks these against `explain`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class QueryShape:
    name: str
    collection: str
    index: str
    equality: tuple[str, ...] = ()
    sort: tuple[tuple[str, int], ...] = ()
    range: tuple[str, ...] = ()
    projection: tuple[str, ...] = ()
    covered: bool = False
    notes: str = ""
    endpoints: tuple[str, ...] = field(default_factory=tuple)

    def index_keys(self) -> list[tuple[str, int]]:
        """The keys an ESR-ordered index for this shape needs, in order."""
        keys: list[tuple[str, int]] = [(name, 1) for name in self.equality]
        keys += [key for key in self.sort if key[0] not in self.equality]
        keys += [(name, 1) for name in self.range if name not in {k for k, _ in keys}]
        return keys
