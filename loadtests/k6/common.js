// Shared helpers for the k6 scripts: configuration from the environment, auth headers and
// the per-class budgets (seed 002 P95 targets) used as thresholds.
//
// k6 must not phone home: run it with `--no-usage-report` (or K6_NO_USAGE_REPORT=true, which
// docker-compose.yml sets for the k6 service).

import http from 'k6/http';
import { check, fail } from 'k6';
import { Rate } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8000').replace(/\/$/, '');
export const API_KEY = __ENV.API_KEY || '';

// P95 budgets in ms per route class, cache hit rates, error rate and checks: the values of
// budgets.json, the one table locust reads too. `python loadtests/budgets.py check` and
// tests/unit/test_budget_table.py (which runs this code under Node, k6 modules stubbed)
// fail when they drift apart, or from the service's own targets.
export const BUDGETS = { crud: 150, lists: 200, search: 300, reports: 2000 };
export const CACHE_HIT_RATES = { crud: 0.8, lists: 0.6 };

// Share of responses carrying X-Cache that were served from the response cache (hit or
// stale), tagged by route class: the client-side view of the service's hit-rate targets.
export const cacheHit = new Rate('cache_hit');

// `cache: false` leaves the hit rates out: for runs too short or too cold to judge a cache.
export function budgetThresholds(classes, { cache = true } = {}) {
  const thresholds = {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.99'],
  };
  for (const kind of classes) {
    thresholds[`http_req_duration{kind:${kind}}`] = [`p(95)<${BUDGETS[kind]}`];
    if (cache && kind in CACHE_HIT_RATES) {
      thresholds[`cache_hit{kind:${kind}}`] = [`rate>=${CACHE_HIT_RATES[kind]}`];
    }
  }
  return thresholds;
}

export function recordCache(res, kind) {
  const state = res.headers['X-Cache'];
  if (state) {
    cacheHit.add(state === 'hit' || state === 'stale', { kind });
  }
  return res;
}

export function headers(extra) {
  if (!API_KEY) {
    fail('API_KEY is required: python -m enterprise keys create --name k6 --role platform_admin');
  }
  return Object.assign({ Authorization: `Bearer ${API_KEY}`, 'Accept-Encoding': 'br, gzip' }, extra || {});
}

export function get(path, kind, name, extra) {
  const res = http.get(`${BASE_URL}${path}`, { headers: headers(extra), tags: { kind, name: name || path } });
  return recordCache(res, kind);
}

// Organizations and a few of their clinics, discovered once in setup().
export function discover(maxOrganizations) {
  const res = get(`/api/v1/organizations?limit=${Math.min(maxOrganizations, 100)}&fields=name`, 'lists',
    '/api/v1/organizations');
  if (!check(res, { 'organizations listed': (r) => r.status === 200 })) {
    fail(`GET /api/v1/organizations answered ${res.status}: ${res.body}`);
  }
  const organizations = res.json('data').map((o) => o.id);
  if (organizations.length === 0) {
    fail('no organizations: seed first (python -m enterprise seed --preset small)');
  }
  const clinics = [];
  for (const org of organizations.slice(0, 10)) {
    const page = get(`/api/v1/organizations/${org}/clinics?limit=20&fields=name,code,status`, 'lists',
      '/api/v1/organizations/{id}/clinics');
    if (page.status === 200) {
      for (const c of page.json('data')) {
        clinics.push({ id: c.id, org, name: c.name });
      }
    }
  }
  return { organizations, clinics };
}

export function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}
