// Lists and search under a ramp of users: organization clinic lists with cursor paging,
// organization lists, and the clinic name search, with the budgets as thresholds
// (lists P95 < 200 ms, search P95 < 300 ms, item revalidation under the CRUD 150 ms).
//
//   docker compose --profile loadtest run --rm -e API_KEY="$KEY" k6 run /scripts/lists.js
//   k6 run --no-usage-report -e BASE_URL=http://127.0.0.1:8000 -e API_KEY="$KEY" loadtests/k6/lists.js
//
// Read-only: any key that can read every organization works (platform_admin).
// Never let k6 report usage: `--no-usage-report` (docker-compose.yml sets K6_NO_USAGE_REPORT).

import { check, sleep } from 'k6';
import { budgetThresholds, discover, get, pick } from './common.js';

const PEAK = Number(__ENV.PEAK_VUS || 20);

export const options = {
  scenarios: {
    browse: {
      executor: 'ramping-vus',
      startVUs: 1,
      stages: [
        { duration: __ENV.RAMP || '20s', target: PEAK },
        { duration: __ENV.HOLD || '60s', target: PEAK },
        { duration: '10s', target: 0 },
      ],
      gracefulRampDown: '5s',
    },
  },
  // Judged from the first request, warm-up included: too cold to judge the cache (mix.js does).
  thresholds: budgetThresholds(['crud', 'lists', 'search'], { cache: false }),
};

export function setup() {
  return discover(100);
}

// Follow `page.next` like a client would: the cursor is opaque and bound to the query.
function browse(org, pages) {
  let path = `/api/v1/organizations/${org}/clinics?limit=20&fields=name,code,status`;
  for (let i = 0; i < pages && path; i++) {
    const res = get(path, 'lists', '/api/v1/organizations/{id}/clinics');
    if (!check(res, { 'clinic page 200': (r) => r.status === 200 })) {
      return;
    }
    const next = res.json('page.next');
    path = next
      ? `/api/v1/organizations/${org}/clinics?limit=20&fields=name,code,status&cursor=${encodeURIComponent(next)}`
      : null;
  }
}

export default function (data) {
  const roll = Math.random();
  if (roll < 0.5) {
    browse(pick(data.organizations), 3);
  } else if (roll < 0.65) {
    const res = get('/api/v1/organizations?limit=20&sort=name&count=estimated', 'lists', '/api/v1/organizations');
    check(res, { 'organizations 200': (r) => r.status === 200 });
  } else if (roll < 0.85) {
    const clinic = pick(data.clinics);
    const prefix = encodeURIComponent(clinic.name.slice(0, 4 + Math.floor(Math.random() * 6)));
    const res = get(`/api/v1/clinics/search?organizationId=${clinic.org}&q=${prefix}&fields=name,code,status`,
      'search', '/api/v1/clinics/search');
    check(res, { 'search 200': (r) => r.status === 200 });
  } else {
    const clinic = pick(data.clinics);
    const first = get(`/api/v1/clinics/${clinic.id}`, 'crud', '/api/v1/clinics/{id}');
    check(first, { 'clinic 200': (r) => r.status === 200 });
    const again = get(`/api/v1/clinics/${clinic.id}`, 'crud', '/api/v1/clinics/{id} (revalidate)', {
      'If-None-Match': first.headers.Etag,
    });
    check(again, { 'revalidation 304': (r) => r.status === 304 });
  }
  sleep(Math.random() * 0.5);
}
