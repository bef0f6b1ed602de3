"""JSON logs, configured once; every record carries the request id.

Records are handed to a queue on the event loop and written to stderr by a listener thread
(`logging.handlers.QueueHandler` + `QueueListener`), so a slow or blocked stderr never stalls
a request. The request id is read where the record is made, since the listener thread has
no request context.

The access log (one line per request) has a writer of its own: `enterprise/access_log.py`.
"""

from __future__ import annotations

import atexit
import copy
import logging
import logging.handlers
import queue
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from enterprise.context import current_request_id


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "requestId", None) or current_request_id()
        if request_id:
            entry["requestId"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry).decode()


class _ContextQueueHandler(logging.handlers.QueueHandler):
    """Keeps the request id (a ContextVar of the logging task) on the queued record."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # What crosses the thread: the message rendered, the traceback as text, and the
        # request id; arguments and exc_info may not survive the trip.
        prepared = copy.copy(record)
        prepared.requestId = getattr(record, "requestId", None) or current_request_id()
        prepared.message = prepared.msg = record.getMessage()
        prepared.args = None
        if record.exc_info:
            prepared.exc_text = logging.Formatter().formatException(record.exc_info)
            prepared.exc_info = None
        return prepared


def configure(level: str = "INFO", as_json: bool = True) -> None:
    """Route every record through a queue to one stderr handler (JSON or plain text)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, handler, respect_handler_level=True)
    listener.start()
    atexit.register(listener.stop)
    root = logging.getLogger()
    root.handlers[:] = [_ContextQueueHandler(records)]
    root.setLevel(level)
