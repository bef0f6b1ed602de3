"""The route table: every (URI template, resource) the API serves, in one list.

`create_app` adds each to Falcon, keeps the list on the app state and generates
/openapi.json from it, so the description cannot drift from what is routed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from enterprise.metrics import Metrics
from enterprise.resources import (
    assignments,
    audit_events,
    clinics,
    dashboard,
    exports,
    health,
    organizations,
    performance,
    providers,
)
from enterprise.resources.base import Limits
from enterprise.resources.metrics import Exposition
from enterprise.resources.openapi import Specification
from enterprise.resources.reports import OrganizationSummary
from enterprise.services.assignments import AssignmentsService
from enterprise.services.audit import AuditEventsService
from enterprise.services.clinics import ClinicsService
from enterprise.services.exports import ExportsService
from enterprise.services.organizations import OrganizationsService
from enterprise.services.reports import ReportsService
from enterprise.settings import Settings
from enterprise.telemetry import Telemetry

Routes = list[tuple[str, object]]


@dataclass(frozen=True, slots=True)
class Services:
    """What the resources are given: the services, nothing below them."""

    organizations: OrganizationsService
    clinics: ClinicsService
    assignments: AssignmentsService
    reports: ReportsService
    exports: ExportsService
    audit_events: AuditEventsService


@dataclass(frozen=True, slots=True)
class Probes:
    """What readiness checks and shows: each client's ping, and the state's summary."""

    mongo: Callable[[], Awaitable[Any]]
    redis: Callable[[], Awaitable[Any]]
    describe: Callable[[], dict[str, Any]]


def route_table(
    settings: Settings,
    services: Services,
    probes: Probes,
    *,
    telemetry: Telemetry,
    metrics: Metrics | None,
    specification: Specification,
) -> Routes:
    limits = Limits(
        settings.pagination_default_limit, settings.pagination_max_limit, settings.max_body_bytes
    )
    list_ttl = settings.cache_ttl_list
    return [
        ("/health/live", health.Live()),
        ("/health/ready", health.Ready(probes.mongo, probes.redis, probes.describe)),
        *organizations.routes(
            services.organizations,
            limits,
            item_ttl=settings.cache_ttl_organization,
            list_ttl=list_ttl,
        ),
        *clinics.routes(
            services.clinics, limits, item_ttl=settings.cache_ttl_clinic, list_ttl=list_ttl
        ),
        *assignments.routes(
            services.assignments,
            limits,
            item_ttl=settings.cache_ttl_assignment,
            list_ttl=list_ttl,
        ),
        *providers.routes(services.assignments, limits, list_ttl=list_ttl),
        (
            "/api/v1/reports/organizations/{organization_id}/summary",
            OrganizationSummary(services.reports, ttl=settings.cache_ttl_stats),
        ),
        *exports.routes(services.exports),
        *audit_events.routes(services.audit_events, limits),
        *performance.routes(telemetry, slow_query_ms=settings.db_slow_query_threshold),
        *([("/metrics", Exposition(metrics, telemetry))] if metrics else []),
        *dashboard.routes(),
        ("/openapi.json", specification),
    ]
