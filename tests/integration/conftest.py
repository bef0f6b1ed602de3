"""Integration fixtures shared by several modules."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import MONGODB_URI, make_client
from tests.integration.factories import CommandRecorder


@pytest.fixture
async def db(mongo: AsyncMongoClient[Any]) -> AsyncIterator[AsyncDatabase[Any]]:
    """A fresh, empty database on the project's server (no indexes synced); dropped afterwards.
    The `database` fixture is the one with the declared indexes."""
    database = mongo[f"scratch_{uuid.uuid4().hex[:12]}"]
    yield database
    await mongo.drop_database(database.name)


@asynccontextmanager
async def monitored_app(
    settings: Settings, redis_client: redis.asyncio.Redis, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, CommandRecorder, Any]]:
    """The app with `overrides` on a MongoDB client of its own whose commands are recorded,
    so the commands a request sends can be counted and inspected."""
    recorder = CommandRecorder()
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(
        MONGODB_URI, tz_aware=True, event_listeners=[recorder]
    )
    app = create_app(settings.with_overrides(**overrides), mongo=mongo, redis_client=redis_client)
    try:
        async with await make_client(app) as http:
            yield http, recorder, app
    finally:
        await mongo.close()


@pytest.fixture
async def monitored(
    settings: Settings, redis_client: redis.asyncio.Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, CommandRecorder, Any]]:
    """`monitored_app` with no response cache: every request reaches MongoDB."""
    async with monitored_app(settings, redis_client, cache_enabled=False) as monitored:
        yield monitored
