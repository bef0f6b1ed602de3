"""Integration fixtures shared by several modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio
from pymongo import AsyncMongoClient

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import MONGODB_URI, make_client
from tests.integration.factories import CommandRecorder


@pytest.fixture
async def monitored(
    settings: Settings, redis_client: redis.asyncio.Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, CommandRecorder, Any]]:
    """The app on its own client with command monitoring and no response cache, so the
    commands a request sends can be counted and inspected."""
    recorder = CommandRecorder()
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(
        MONGODB_URI, tz_aware=True, event_listeners=[recorder]
    )
    app = create_app(
        settings.with_overrides(cache_enabled=False), mongo=mongo, redis_client=redis_client
    )
    async with await make_client(app) as http:
        yield http, recorder, app
    await mongo.close()
