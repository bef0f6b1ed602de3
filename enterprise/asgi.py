"""The ASGI entry point: the one module with side effects (environment, logging, the GC)."""

import gc

from enterprise import logs
from enterprise.app import create_app
from enterprise.settings import Settings

settings = Settings.from_env()
logs.configure(settings.log_level, settings.log_json, access_log=settings.access_log)
app = create_app(settings)

# What exists now (modules, the app, its clients) lives as long as the worker. Freezing it
# keeps full collections from scanning it again and again: they then look only at what
# requests allocate. Measured: gen-2 pauses of up to 29 ms became < 1 ms (docs/benchmarks.md).
gc.collect()
gc.freeze()
