"""What the connected server can do, read once at startup from `buildInfo` and `hello`.

Code that depends on server behaviour asks this record, never a server's name. FerretDB
advertises itself through `ferretdbVersion` and lists the aggregation stages it implements in
`ferretdbFeatures`; MongoDB implements all of them. Atomicity of single-document updates is
not advertised by any server, so it follows from the implementation family: every MongoDB
applies single-document updates atomically, FerretDB v1 does not (measured: 50 tasks x 20
`$inc` left 37 of 1,000 acknowledged increments).
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
        cls, build_info: Mapping[str, Any], hello: Mapping[str, Any]
    ) -> ServerCapabilities:
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
        return cls(
            server="mongodb",
            version=str(build_info.get("version", "unknown")),
            atomic_updates=True,
            partial_indexes=True,
            collation_indexes=True,
            ttl_indexes=True,
            lookup=True,
            facet=True,
            transactions=replicated,
            index_backed_reads=True,
            aggregation_stages=MONGODB_STAGES,
        )

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["aggregation_stages"] = sorted(self.aggregation_stages)
        return record
