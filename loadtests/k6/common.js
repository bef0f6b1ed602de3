// Shared helpers for the k6 scripts: configuration from the environment, auth headers and
// the per-class budgets (seed 002 P95 targets) used as thresholds.
//
// k6 must not phone home: run it with `--no-usage-report` (or K6_NO_USAGE_REPORT=true, which
// docker-compose.yml sets for the k6 service).

import http from 'k6/http';
import { check, fail } from 'k6';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8000').replace(/\/$/, '');
export const API_KEY = __ENV.API_KEY || '';

// P95 budgets in ms per route class, error rate and checks: the values of budgets.json, the
// one table locust reads too. `python loadtests/budgets.py check` (a unit test) fails when
// they drift apart, or from the service's own budgets (settings.DEFAULT_BUDGETS_MS).
export const BUDGETS = { crud: 150, lists: 200, search: 300 };

export function budgetThresholds(classes) {
  const thresholds = {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.99'],
  };
  for (const kind of classes) {
    thresholds[`http_req_duration{kind:${kind}}`] = [`p(95)<${BUDGETS[kind]}`];
  }
  return thresholds;
}

export function headers(extra) {
  if (!API_KEY) {
    fail('API_KEY is required: python -m enterprise keys create --name k6 --role platform_admin');
  }
  return Object.assign({ Authorization: `Bearer ${API_KEY}`, 'Accept-Encoding': 'br, gzip' }, extra || {});
}

export function get(path, kind, name, extra) {
  return http.get(`${BASE_URL}${path}`, { headers: headers(extra), tags: { kind, name: name || path } });
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
