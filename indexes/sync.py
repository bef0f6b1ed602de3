"""Compare declared indexes with the live ones, and apply them only when asked.

Indexes are data (`indexes/<collection>.py`); this module is the one place that turns them
into server state, and only from `python -m indexes sync`, never at import or in a
constructor. It diffs declared against live before it drops anything, and it tells a server
limitation (a wire-compatible server refusing a TTL index, or accepting `sparse` without
reporting it) apart from drift by probing what the server can do, never by its name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from indexes import DECLARED

logger = logging.getLogger(__name__)

Echo = Callable[[str], None]
Declared = Mapping[str, Sequence[IndexModel]]
Status = Literal[
    "ok", "missing", "different", "extra", "limitation", "created", "rebuilt", "dropped", "failed"
]

DRIFT: frozenset[str] = frozenset({"missing", "different", "extra"})
OPTIONS = ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression", "collation")
PROBE_COLLECTION = "__indexes_probe"
_NOT_IMPLEMENTED = 238
_CANNOT_CREATE_INDEX = 67
_COLLECTION_WIDTH = max(len(name) for name in DECLARED) + 2
_NAME_WIDTH = max(len(m.document["name"]) for ms in DECLARED.values() for m in ms) + 2


@dataclass(frozen=True, slots=True)
class IndexState:
    """One declared or live index and what the comparison (or the sync) found.

    `live_name` is the live index to drop when rebuilding: the declared name, or another
    name that already holds the declared keys.
    """

    collection: str
    name: str
    status: Status
    detail: str = ""
    live_name: str | None = None

    def line(self) -> str:
        """One aligned, human-readable line: collection, index, status and why."""
        status = f"{self.status}: {self.detail}" if self.detail else self.status
        return f"{self.collection:<{_COLLECTION_WIDTH}}{self.name:<{_NAME_WIDTH}}{status}"


@dataclass(slots=True)
class Plan:
    """Every index of every declared collection, with its status."""

    entries: list[IndexState] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        """Live differs from declared; limitations are the server's, not drift."""
        return any(entry.status in DRIFT for entry in self.entries)

    @property
    def failed(self) -> bool:
        """Something could not be applied for a reason other than a server limitation."""
        return any(entry.status == "failed" for entry in self.entries)

    def get(self, collection: str, name: str) -> IndexState | None:
        """The entry for one index, or None when neither declared nor live."""
        found = (e for e in self.entries if e.collection == collection and e.name == name)
        return next(found, None)

    def summary(self) -> str:
        """Counts per status, so the last line of the output says it all."""
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.status] = counts.get(entry.status, 0) + 1
        text = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        return f"{'drift' if self.drift else 'no drift'}: {text or 'nothing declared'}"


@dataclass(frozen=True, slots=True)
class Capability:
    """What the server did with one index option on the scratch collection."""

    option: str
    refused: str = ""
    reported: bool = True

    @property
    def limitation(self) -> str:
        """Why the server cannot honour or show the option; empty when it can."""
        if self.refused:
            return f"server refuses {self.option} ({self.refused})"
        if not self.reported:
            return f"server accepts {self.option} but does not report it"
        return ""


class Prober:
    """Asks the server, once per option and run, whether it supports an index option.

    Probing a scratch collection answers "can this server do it?" without touching real
    data and without guessing from the server's name or version.
    """

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._db = db
        self._cache: dict[str, Capability] = {}

    async def capability(self, declared: Mapping[str, Any], option: str) -> Capability | None:
        """The cached or probed capability; None when the probe failed for another reason."""
        if option not in self._cache:
            probed = await self._probe(declared, option)
            if probed is None:
                return None
            self._cache[option] = probed
        return self._cache[option]

    async def _probe(self, declared: Mapping[str, Any], option: str) -> Capability | None:
        name = f"probe_{option}"
        model = IndexModel(list(declared["key"].items()), name=name, **{option: declared[option]})
        scratch = self._db[PROBE_COLLECTION]
        try:
            await scratch.create_indexes([model])
            live = await live_indexes(scratch)
        except OperationFailure as ex:
            if not is_not_implemented(ex):
                # Not a capability answer (a bad declaration, no privilege): the sync or the
                # diff reports the index as it stands.
                logger.warning("probe of %s inconclusive: %s", option, server_message(ex))
                return None
            return Capability(option, refused=server_message(ex))
        finally:
            await self._drop_scratch(scratch)
        return Capability(option, reported=option in live.get(name, {}))

    @staticmethod
    async def _drop_scratch(scratch: AsyncCollection[Any]) -> None:
        try:
            await scratch.drop()
        except OperationFailure as ex:
            logger.warning("could not drop %s: %s", scratch.name, server_message(ex))


def is_not_implemented(ex: OperationFailure) -> bool:
    """The server refused because it lacks the feature, not because the request is wrong."""
    if ex.code == _NOT_IMPLEMENTED:
        return True
    return ex.code == _CANNOT_CREATE_INDEX and "not implemented" in server_message(ex).lower()


def server_message(ex: OperationFailure) -> str:
    """`CodeName: errmsg`, short enough for one output line."""
    details = ex.details or {}
    message = str(details.get("errmsg") or ex).split(", full error:")[0]
    code_name = details.get("codeName")
    return f"{code_name}: {message}" if code_name else message


async def live_indexes(collection: AsyncCollection[Any]) -> dict[str, Mapping[str, Any]]:
    """Live indexes by name, without `_id_`, which is not ours to declare or drop."""
    cursor = await collection.list_indexes()
    return {ix["name"]: ix async for ix in cursor if ix["name"] != "_id_"}


def index_keys(index: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Key pattern as a list; 1.0 and Int64(1) read back as 1, so numbers compare as ints."""
    keys: list[tuple[str, Any]] = []
    for name, direction in index["key"].items():
        is_number = isinstance(direction, int | float) and not isinstance(direction, bool)
        keys.append((name, int(direction) if is_number else direction))
    return keys


def _key_text(index: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {direction}" for name, direction in index_keys(index))


def _plain(value: Any) -> Any:
    """SON and nested documents as plain dicts and lists, for order-insensitive equality."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _same_option(option: str, declared: Any, live: Any) -> bool:
    if option in ("unique", "sparse"):
        return bool(declared) == bool(live)
    if declared is None or live is None:
        return declared is None and live is None
    if option == "expireAfterSeconds":
        return bool(float(declared) == float(live))
    if option == "collation":
        # The server fills in every collation default; what we declared must be among them.
        live_collation = _plain(live)
        return all(live_collation.get(k) == v for k, v in _plain(declared).items())
    return bool(_plain(declared) == _plain(live))


def compare(declared: Mapping[str, Any], live: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Differences, and declared options the live index does not mention at all.

    Keys and `unique` always count as differences. An option absent from the live index
    may be the server not reporting it, which only a probe can tell.
    """
    problems: list[str] = []
    unreported: list[str] = []
    if index_keys(declared) != index_keys(live):
        problems.append(f"keys live ({_key_text(live)}), declared ({_key_text(declared)})")
    for option in OPTIONS:
        want, have = declared.get(option), live.get(option)
        if _same_option(option, want, have):
            continue
        if option != "unique" and option not in live:
            unreported.append(option)
        else:
            problems.append(f"{option} live {have!r}, declared {want!r}")
    return problems, unreported


async def _plan_live(
    collection: str, declared: Mapping[str, Any], live: Mapping[str, Any], prober: Prober
) -> IndexState:
    """Ok, different, or a limitation when the only gap is an option the server can't show."""
    name = declared["name"]
    problems, unreported = compare(declared, live)
    if problems:
        return IndexState(collection, name, "different", "; ".join(problems), live_name=name)
    limitations: list[str] = []
    for option in unreported:
        capability = await prober.capability(declared, option)
        if capability is None or not capability.limitation:
            detail = f"{option} live absent, declared {declared[option]!r}"
            return IndexState(collection, name, "different", detail, live_name=name)
        limitations.append(capability.limitation)
    if limitations:
        return IndexState(collection, name, "limitation", "; ".join(limitations))
    return IndexState(collection, name, "ok")


async def _plan_missing(
    collection: str,
    declared: Mapping[str, Any],
    undeclared: Mapping[str, Mapping[str, Any]],
    prober: Prober,
) -> IndexState:
    """Missing, unless its keys live under another name or the server refuses an option."""
    name = declared["name"]
    keys = index_keys(declared)
    twin = next((other for other, ix in undeclared.items() if index_keys(ix) == keys), None)
    if twin is not None:
        detail = f"its keys are live as index {twin!r}"
        return IndexState(collection, name, "different", detail, live_name=twin)
    refused: list[str] = []
    for option in (o for o in declared if o not in ("key", "name")):
        capability = await prober.capability(declared, option)
        if capability is not None and capability.refused:
            refused.append(capability.limitation)
    if refused:
        return IndexState(collection, name, "limitation", "; ".join(refused))
    return IndexState(collection, name, "missing")


async def _plan_collection(
    db: AsyncDatabase[Any], collection: str, models: Sequence[IndexModel], prober: Prober
) -> list[IndexState]:
    live = await live_indexes(db[collection])
    names = {model.document["name"] for model in models}
    extras = {name: index for name, index in live.items() if name not in names}
    states: list[IndexState] = []
    for model in models:
        declared = model.document
        current = live.get(declared["name"])
        if current is None:
            states.append(await _plan_missing(collection, declared, extras, prober))
        else:
            states.append(await _plan_live(collection, declared, current, prober))
    states += [IndexState(collection, n, "extra", "not declared", live_name=n) for n in extras]
    return states


async def _plan(db: AsyncDatabase[Any], declared: Declared, prober: Prober) -> Plan:
    result = Plan()
    for collection, models in declared.items():
        result.entries += await _plan_collection(db, collection, models, prober)
    return result


async def plan(db: AsyncDatabase[Any], declared: Declared = DECLARED) -> Plan:
    """Declared against live for every declared collection, without changing them.

    The only write is to a scratch collection, created and dropped to probe what the server
    supports, so a limitation is measured rather than assumed.
    """
    return await _plan(db, declared, Prober(db))


async def diff(db: AsyncDatabase[Any], echo: Echo, declared: Declared = DECLARED) -> Plan:
    """The plan, one line per index; `drift` says whether a sync would change anything."""
    result = await plan(db, declared)
    for entry in result.entries:
        echo(entry.line())
    return result


def _model(models: Sequence[IndexModel], name: str) -> IndexModel:
    return next(model for model in models if model.document["name"] == name)


async def _create(
    collection: AsyncCollection[Any], state: IndexState, model: IndexModel
) -> IndexState:
    """One `create_indexes` per index, so one refused option does not block the others."""
    done: Status = "rebuilt" if state.status == "different" else "created"
    try:
        await collection.create_indexes([model])
    except OperationFailure as ex:
        status: Status = "limitation" if is_not_implemented(ex) else "failed"
        detail = f"server refuses it ({server_message(ex)})"
        return IndexState(state.collection, state.name, status, detail)
    return IndexState(state.collection, state.name, done)


async def _prune(collection: AsyncCollection[Any], states: Sequence[IndexState]) -> dict[str, str]:
    """Drop extras and the live side of `different` indexes; returns why a drop failed."""
    stale = {s.live_name for s in states if s.status in ("extra", "different") and s.live_name}
    failures: dict[str, str] = {}
    for name in sorted(stale):
        try:
            await collection.drop_index(name)
        except OperationFailure as ex:
            failures[name] = f"could not drop live index {name!r} ({server_message(ex)})"
    return failures


async def _apply(
    collection: AsyncCollection[Any],
    state: IndexState,
    models: Sequence[IndexModel],
    prune: bool,
    failed_drops: Mapping[str, str],
) -> IndexState:
    if state.live_name is not None and state.live_name in failed_drops:
        return IndexState(state.collection, state.name, "failed", failed_drops[state.live_name])
    if state.status == "extra":
        if prune:
            return IndexState(state.collection, state.name, "dropped")
        return IndexState(state.collection, state.name, "extra", "not declared (--prune drops)")
    if state.status == "different" and not prune:
        detail = f"{state.detail} (--prune rebuilds)"
        return IndexState(state.collection, state.name, "different", detail, state.live_name)
    if state.status in ("missing", "different"):
        return await _create(collection, state, _model(models, state.name))
    return state


async def sync(
    db: AsyncDatabase[Any], *, prune: bool, echo: Echo, declared: Declared = DECLARED
) -> Plan:
    """Create what is missing; rebuild `different` and drop extras only with `prune`.

    The whole plan is computed before anything is dropped, so a typo in a declaration shows
    up as drift to read instead of a dropped production index.
    """
    prober = Prober(db)
    before = await _plan(db, declared, prober)
    result = Plan()
    for name, models in declared.items():
        collection = db[name]
        states = [entry for entry in before.entries if entry.collection == name]
        failed_drops = await _prune(collection, states) if prune else {}
        for state in states:
            applied = await _apply(collection, state, models, prune, failed_drops)
            echo(applied.line())
            result.entries.append(applied)
    return result
