// Smoke load test: a few users exercising CRUD, lists, revalidation and search, with the
// P95 budgets as thresholds (k6 exits non-zero when one is missed).
//
//   docker compose --profile loadtest run --rm -e API_KEY="$KEY" k6
//   k6 run --no-usage-report -e BASE_URL=http://127.0.0.1:8000 -e API_KEY="$KEY" loadtests/k6/smoke.js
//
// API_KEY must be a platform_admin key (the script creates, patches and deletes its own
// organizations): `python -m enterprise keys create --name k6 --role platform_admin`, or the
// key `make seed` / `docker compose --profile setup run --rm seed` prints.
// Never let k6 report usage: `--no-usage-report` (docker-compose.yml sets K6_NO_USAGE_REPORT).

import http from 'k6/http';
import { check, group, sleep } from 'k6';
import { BASE_URL, budgetThresholds, discover, get, headers, pick } from './common.js';

export const options = {
  vus: Number(__ENV.VUS || 5),
  duration: __ENV.DURATION || '30s',
  // A smoke run starts from a cold cache and is too short to judge its hit rate (mix.js does).
  thresholds: budgetThresholds(['crud', 'lists', 'search'], { cache: false }),
};

export function setup() {
  const live = http.get(`${BASE_URL}/health/live`, { tags: { name: '/health/live' } });
  check(live, { 'live is 200': (r) => r.status === 200 });
  return discover(20);
}

export default function (data) {
  group('read', () => {
    const clinic = pick(data.clinics);
    const item = get(`/api/v1/clinics/${clinic.id}`, 'crud', '/api/v1/clinics/{id}');
    check(item, { 'clinic 200': (r) => r.status === 200, 'clinic has an ETag': (r) => !!r.headers.Etag });
    const again = get(`/api/v1/clinics/${clinic.id}`, 'crud', '/api/v1/clinics/{id} (revalidate)', {
      'If-None-Match': item.headers.Etag,
    });
    check(again, { 'revalidation 304': (r) => r.status === 304 });

    const list = get(`/api/v1/organizations/${clinic.org}/clinics?limit=20&fields=name,code,status`, 'lists',
      '/api/v1/organizations/{id}/clinics');
    check(list, { 'list 200': (r) => r.status === 200 });

    const prefix = encodeURIComponent(clinic.name.slice(0, 6));
    const search = get(`/api/v1/clinics/search?organizationId=${clinic.org}&q=${prefix}&fields=name,code,status`,
      'search', '/api/v1/clinics/search');
    check(search, { 'search 200': (r) => r.status === 200 });
  });

  group('write', () => {
    const name = `k6 smoke ${__VU}-${__ITER}-${Date.now()}`;
    const created = http.post(`${BASE_URL}/api/v1/organizations`, JSON.stringify({ name }), {
      headers: headers({ 'Content-Type': 'application/json' }),
      tags: { kind: 'crud', name: 'POST /api/v1/organizations' },
    });
    if (!check(created, { 'created 201': (r) => r.status === 201 })) {
      return;
    }
    const id = created.json('id');
    const patched = http.patch(`${BASE_URL}/api/v1/organizations/${id}`, JSON.stringify({ subscriptionTier: 'PRO' }), {
      headers: headers({ 'Content-Type': 'application/merge-patch+json', 'If-Match': created.headers.Etag }),
      tags: { kind: 'crud', name: 'PATCH /api/v1/organizations/{id}' },
    });
    check(patched, { 'patched 200': (r) => r.status === 200 });
    const removed = http.del(`${BASE_URL}/api/v1/organizations/${id}`, null, {
      headers: headers({ 'If-Match': patched.headers.Etag }),
      tags: { kind: 'crud', name: 'DELETE /api/v1/organizations/{id}' },
    });
    check(removed, { 'deleted 204': (r) => r.status === 204 });
  });
  sleep(0.5);
}
