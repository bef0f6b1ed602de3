"""What the connected server can do, read once at startup from `buildInfo`, `hello` and probes.

Code that depends on server behaviour asks this record, never a server's name.

- FerretDB v1 advertises itself through `ferretdbVersion` and lists what it implements in
  `ferretdbFeatures`; its record comes from that list, as it always has.
- Every other server is asked (`enterprise/repositories/probes.py`): on a scratch collection it
  creates a partial, a TTL and a collation index, runs each aggregation stage once and explains
  an indexed find, and records what the server did. FerretDB v2 on DocumentDB, for instance,
  refuses collation indexes ("createIndex.collation is not implemented yet"). When the probes
  cannot run (no privilege to create a collection), the record falls back to what MongoDB
  implements, which is what such a server claims in `buildInfo`.

Atomicity of single-document updates is not advertised by any server and no cheap probe
shows it, so it follows from the implementation family: MongoDB applies single-document
updates atomically; so does FerretDB v2, which keeps a document in one PostgreSQL row and
updates it under that row's lock (measured: 50 tasks x 20 `$inc` applied 1,000 of 1,000);
FerretDB v1 does not (it left 37 of 1,000). `tests/contract/test_atomic_updates.py` holds every
backend to this claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

MONGODB_STAGES = frozenset(
    {
        "$addFields",
        "$bucket",
        "$collStats",
        "$count",
        "$facet",
        "$group",
        "$limit",
        "$lookup",
        "$match",
        "$merge",
        "$out",
        "$project",
        "$replaceRoot",
        "$sample",
        "$set",
        "$skip",
        "$sort",
        "$sortByCount",
        "$unionWith",
        "$unset",
        "$unwind",
    }
)


@dataclass(frozen=True, slots=True)
class ProbedFeatures:
    """What the server did when asked on a scratch collection, not what it claims."""

    partial_indexes: bool
    ttl_indexes: bool
    collation_indexes: bool
    index_backed_reads: bool
    aggregation_stages: frozenset[str]


@dataclass(frozen=True, slots=True)
class ServerCapabilities:
    server: str
    version: str
    atomic_updates: bool
    partial_indexes: bool
    collation_indexes: bool
    ttl_indexes: bool
    lookup: bool
    facet: bool
    transactions: bool
    index_backed_reads: bool
    aggregation_stages: frozenset[str]

    @classmethod
    def from_server(
        cls,
        build_info: Mapping[str, Any],
        hello: Mapping[str, Any],
        probed: ProbedFeatures | None = None,
    ) -> ServerCapabilities:
        """The record for a server; `probed` (absent for FerretDB v1) overrides its claims."""
        features = build_info.get("ferretdbFeatures")
        if "ferretdbVersion" in build_info:
            stages = frozenset((features or {}).get("aggregationStages", ()))
            return cls(
                server="ferretdb",
                version=str(build_info.get("ferretdbVersion")),
                atomic_updates=bool((features or {}).get("atomicUpdates", False)),
                partial_indexes=bool((features or {}).get("partialIndexes", False)),
                collation_indexes=False,
                ttl_indexes=False,
                lookup="$lookup" in stages,
                facet="$facet" in stages,
                transactions=False,
                index_backed_reads=False,
                aggregation_stages=stages,
            )
        replicated = "setName" in hello or hello.get("msg") == "isdbgrid"
        # FerretDB v2 names itself in a `ferretdb` sub-document; the name is reported, not used.
        ferretdb = build_info.get("ferretdb")
        claimed = probed or ProbedFeatures(
            partial_indexes=True,
            ttl_indexes=True,
            collation_indexes=True,
            index_backed_reads=True,
            aggregation_stages=MONGODB_STAGES,
        )
        return cls(
            server="ferretdb" if isinstance(ferretdb, Mapping) else "mongodb",
            version=str(
                ferretdb.get("version", "unknown")
                if isinstance(ferretdb, Mapping)
                else build_info.get("version", "unknown")
            ),
            atomic_updates=True,
            partial_indexes=claimed.partial_indexes,
            collation_indexes=claimed.collation_indexes,
            ttl_indexes=claimed.ttl_indexes,
            lookup="$lookup" in claimed.aggregation_stages,
            facet="$facet" in claimed.aggregation_stages,
            transactions=replicated,
            index_backed_reads=claimed.index_backed_reads,
            aggregation_stages=claimed.aggregation_stages,
        )

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["aggregation_stages"] = sorted(self.aggregation_stages)
        return record
