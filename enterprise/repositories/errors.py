"""Driver errors → domain errors, in one place for every repository."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import pybreaker
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from enterprise.breakers import Circuit
from enterprise.errors import Conflict, DeadlineExceeded, Unavailable

# FerretDB v1 reports a unique violation on update as InternalError (code 1) with SQLite's
# message, e.g. "UNIQUE constraint failed: index 'clinics_1a2b3c4d_clinics_org_code_unique'".
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: index '([^']+)'")
# FerretDB v2 on DocumentDB reports one on update as InternalError (code 1) with PostgreSQL's
# message, naming its own constraint, not ours: 'conflicting key value violates exclusion
# constraint "documents_rum_index_4123"'. The repository then finds the rule by asking.
_POSTGRES_UNIQUE = re.compile(r"conflicting key value violates exclusion constraint")


def _conflict(index_name: str, unique_fields: Mapping[str, str], collection: str) -> Conflict:
    for name, field in unique_fields.items():
        if index_name == name or index_name.endswith("_" + name):
            return Conflict(f"a {collection[:-1]} with this {field} already exists", field=field)
    return Conflict(f"a {collection[:-1]} with these values already exists")


# A server that stops answers the operations it abandons with an error. MongoDB: shutdown
# and not-primary codes (InterruptedAtShutdown, ShutdownInProgress, InterruptedDueToRepl
# StateChange, PrimarySteppedDown, NotWritablePrimary, NotPrimaryNoSecondaryOk,
# NotPrimaryOrSecondary). FerretDB v2: InternalError (code 1) "context canceled", its
# request context ended by the stop (seen in the outage test, 2026-12-02: a 500 before).
_GOING_AWAY_CODES = frozenset({11600, 91, 11602, 189, 10107, 13435, 13436})


def _going_away(ex: BaseException) -> bool:
    if not isinstance(ex, OperationFailure):
        return False
    return ex.code in _GOING_AWAY_CODES or (ex.code == 1 and "context canceled" in str(ex))


def is_outage(ex: BaseException) -> bool:
    """Whether a failed driver call says the server is not serving (what trips the breaker).

    Connection failures and server selection timeouts do. So do timeouts: a hung server
    (SIGSTOP, a full disk, a lock pile-up) accepts connections and never answers, and its
    only symptom is that calls time out. So does an operation the server abandoned as it
    stopped. An answer, even "no" (duplicate key, validation, any other `OperationFailure`
    that is not a timeout), shows the server serving.
    """
    if isinstance(ex, ConnectionFailure):  # server selection, refused, reset, network timeout
        return True
    return isinstance(ex, PyMongoError) and (ex.timeout or _going_away(ex))


def _maybe_sent(ex: BaseException | None) -> bool:
    """A failure after which a write may have reached the server (all but server selection)."""
    return isinstance(ex, PyMongoError) and not isinstance(ex, ServerSelectionTimeoutError)


def refused(circuit: Circuit) -> Unavailable:
    """A call the open circuit refused untried: 503 until the next trial."""
    return Unavailable(
        "the database is unavailable (circuit breaker open); the request was not applied",
        retry_after=circuit.retry_after(),
    )


def timed_out() -> DeadlineExceeded:
    """A call the request's deadline ended: the driver's, or the app's own bound on it."""
    return DeadlineExceeded("the database did not answer within the request deadline")


def _unknown_outcome() -> DeadlineExceeded:
    return DeadlineExceeded(
        "the connection to the database was lost while the write was in flight: its outcome "
        "is unknown; re-read the document (its version tells) before retrying"
    )


@contextmanager
def translated(
    collection: str,
    unique_fields: Mapping[str, str],
    circuit: Circuit | None = None,
    bound: AbstractContextManager[Any] | None = None,
    *,
    hold: bool = True,
    write: bool = False,
) -> Iterator[None]:
    """Run driver calls, through `circuit` when given and within `bound`; re-raise their
    failures as the domain errors the API promises. While the circuit is open, fail at once
    with 503 and the seconds until the next trial as `Retry-After`. `hold=False`: only
    refused while open; the outcome is not counted (a stream of any length).

    `write`: a connection lost once a write may have been sent leaves its outcome unknown:
    504 (re-read before retrying, as after any gateway timeout), never 503, which promises
    the write was not applied. Only a write that never reached a server is a 503.
    """
    guarded = circuit.calling() if circuit is not None and hold else nullcontext()
    tried = False
    try:
        if circuit is not None and not hold:
            circuit.admit()
        with guarded, bound or nullcontext():
            tried = True
            yield
    except pybreaker.CircuitBreakerError as ex:
        assert circuit is not None
        # Tried and failed (the failure that tripped it, a failed trial), or refused untried.
        if tried and write and _maybe_sent(ex.__context__):
            raise _unknown_outcome() from ex
        if not tried:
            raise refused(circuit) from ex
        raise Unavailable("the database is unavailable", retry_after=circuit.retry_after()) from ex
    except DuplicateKeyError as ex:
        details = ex.details or {}
        name = str(details.get("errmsg", ""))
        match = re.search(r"index: (\S+)", name)
        index_name = match.group(1) if match else ""
        key_pattern = details.get("keyPattern") or {}
        for index, field in unique_fields.items():
            if index == index_name or (key_pattern and field in key_pattern):
                raise Conflict(
                    f"a {collection[:-1]} with this {field} already exists", field=field
                ) from ex
        raise _conflict(index_name, unique_fields, collection) from ex
    except (ExecutionTimeout, WTimeoutError) as ex:
        raise timed_out() from ex
    except TimeoutError as ex:  # the caller's own bound on the call (`asyncio.timeout`)
        raise timed_out() from ex
    except OperationFailure as ex:
        match = _SQLITE_UNIQUE.search(str(ex))
        if match:
            raise _conflict(match.group(1), unique_fields, collection) from ex
        if _POSTGRES_UNIQUE.search(str(ex)):
            raise Conflict(f"a {collection[:-1]} with these values already exists") from ex
        if ex.timeout:
            raise timed_out() from ex
        if _going_away(ex):  # the server stopped during the call
            if write:
                raise _unknown_outcome() from ex
            raise Unavailable("the database is unavailable", retry_after=2) from ex
        raise
    except ServerSelectionTimeoutError as ex:
        raise Unavailable("the database is unavailable", retry_after=2) from ex
    except ConnectionFailure as ex:
        if ex.timeout:  # NetworkTimeout: the request's deadline ran out mid-operation
            raise timed_out() from ex
        if write:
            raise _unknown_outcome() from ex
        raise Unavailable("the database is unavailable", retry_after=2) from ex
    except PyMongoError as ex:
        if ex.timeout:
            raise timed_out() from ex
        raise
