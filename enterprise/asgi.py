"""The ASGI entry point: the one module with side effects (environment, logging and the
access log's writer thread, the GC)."""

import atexit
import gc
import sys

from enterprise import logs
from enterprise.access_log import AccessLog
from enterprise.app import create_app
from enterprise.settings import Settings

settings = Settings.from_env()
logs.configure(settings.log_level, settings.log_json)
access_log = AccessLog(sys.stderr.buffer) if settings.access_log else None
if access_log is not None:
    access_log.start()
    atexit.register(access_log.stop)
app = create_app(settings, access_log=access_log)

# What exists now (modules, the app, its clients) lives as long as the worker. Freezing it
# keeps full collections from scanning it again and again: they then look only at what
# requests allocate. Measured: gen-2 pauses of up to 29 ms became < 1 ms (docs/benchmarks.md).
gc.collect()
gc.freeze()
