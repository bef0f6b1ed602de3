"""The ASGI entry point: the one module with side effects (environment, logging)."""

from enterprise import logs
from enterprise.app import create_app
from enterprise.settings import Settings

settings = Settings.from_env()
logs.configure(settings.log_level, settings.log_json)
app = create_app(settings)
