// The mixed scenario of loadtests/locustfile.py, with the same task weights (out of 100) and
// the budget table's thresholds (P95 per route class, error rate, checks, cache hit rate):
// [36] read by id with `fields=` (clinics 3 in 4, else the organization), [20] revalidate with
// If-None-Match, [22] cursor walk of an organization's clinics, [12] name-prefix search,
// [6] organization summary report, [3] PATCH with If-Match, [1] create a clinic.
// Reads are Zipf-skewed like locust's, writes uniform. One VU in four uses an org_admin key (ORG_KEYS).
//
//   docker compose --profile loadtest run --rm -e API_KEY="$KEY" -e ORG_KEYS="$ORG_KEYS" k6 run /scripts/mix.js
//   k6 run --no-usage-report -e BASE_URL=http://127.0.0.1:8000 -e API_KEY="$KEY" loadtests/k6/mix.js
//
// API_KEY: platform_admin; ORG_KEYS (optional): "<organization id>=<org_admin key>,...".
// The first 20 s warm the cache and are not judged (their requests carry phase:warmup).

import http from 'k6/http';
import { check, sleep } from 'k6';
import { BASE_URL, API_KEY, budgetThresholds, discover, get, headers } from './common.js';

const VUS = Number(__ENV.VUS || 20);
const ORG_KEYS = (__ENV.ORG_KEYS || '').split(',').filter((s) => s.includes('=')).map((s) => s.split('='));

const judged = budgetThresholds(['crud', 'lists', 'search', 'reports']);
const thresholds = {};
for (const [name, rules] of Object.entries(judged)) {
  // Judge the steady state only: P95s and hit rates of the requests after the warm-up.
  thresholds[name.includes('{') ? name.replace('}', ',phase:steady}') : name] = rules;
}

export const options = {
  scenarios: {
    warmup: { executor: 'constant-vus', vus: VUS, duration: __ENV.WARMUP || '20s', tags: { phase: 'warmup' } },
    steady: {
      executor: 'constant-vus', vus: VUS, duration: __ENV.DURATION || '60s',
      startTime: __ENV.WARMUP || '20s', tags: { phase: 'steady' },
    },
  },
  thresholds,
};

export function setup() {
  const found = discover(10);
  const byOrg = {};
  for (const c of found.clinics) {
    (byOrg[c.org] = byOrg[c.org] || []).push(c);
  }
  return { organizations: Object.keys(byOrg), byOrg };
}

// The n-th of `list` 1/n as often as the first (Zipf, s = 1), as in the locustfile.
function popular(list) {
  let total = 0;
  for (let i = 1; i <= list.length; i++) total += 1 / i;
  let roll = Math.random() * total;
  for (let i = 0; i < list.length; i++) {
    roll -= 1 / (i + 1);
    if (roll <= 0) return list[i];
  }
  return list[list.length - 1];
}

const seen = {}; // per VU: path -> [name, kind, ETag]

function auth() {
  // One VU in four is an organization's user when ORG_KEYS are given.
  if (ORG_KEYS.length && __VU % 4 === 0) {
    const [org, key] = ORG_KEYS[__VU % ORG_KEYS.length];
    return { org, extra: { Authorization: `Bearer ${key}` } };
  }
  return { org: null, extra: { Authorization: `Bearer ${API_KEY}` } };
}

function read(path, kind, name, extra) {
  const res = get(path, kind, name, extra);
  if (check(res, { [`${name} 200`]: (r) => r.status === 200 })) {
    seen[path] = [name, kind, res.headers.Etag];
  }
  return res;
}

export default function (data) {
  const who = auth();
  const org = who.org && data.byOrg[who.org] ? who.org : popular(data.organizations);
  const clinic = popular(data.byOrg[org]);
  const roll = Math.random() * 100;
  if (roll < 36) {
    if (Math.random() < 0.75) {
      const fields = popular(['name,code,status', 'name,address,managerUserId']);
      read(`/api/v1/clinics/${clinic.id}?fields=${fields}`, 'crud', '/api/v1/clinics/{id}', who.extra);
    } else {
      const fields = popular(['name,status', 'name,status,subscriptionTier']);
      read(`/api/v1/organizations/${org}?fields=${fields}`, 'crud', '/api/v1/organizations/{id}', who.extra);
    }
  } else if (roll < 56) {
    const paths = Object.keys(seen);
    if (paths.length) {
      const path = paths[Math.floor(Math.random() * paths.length)];
      const [name, kind, etag] = seen[path];
      const res = get(path, kind, `${name} (revalidate)`, Object.assign({ 'If-None-Match': etag }, who.extra));
      check(res, { 'revalidation 304 or 200': (r) => r.status === 304 || r.status === 200 });
    }
  } else if (roll < 78) {
    let path = `/api/v1/organizations/${org}/clinics?limit=20&fields=name,code,status`;
    for (let page = 0; page < 3 && path; page++) {
      const res = read(path, 'lists', '/api/v1/organizations/{id}/clinics', who.extra);
      const next = res.status === 200 ? res.json('page.next') : null;
      path = next
        ? `/api/v1/organizations/${org}/clinics?limit=20&fields=name,code,status&cursor=${encodeURIComponent(next)}`
        : null;
    }
  } else if (roll < 90) {
    const prefix = encodeURIComponent(clinic.name.slice(0, 3 + Math.floor(Math.random() * 6)));
    read(`/api/v1/clinics/search?organizationId=${org}&q=${prefix}&fields=name,code,status`, 'search',
      '/api/v1/clinics/search', who.extra);
  } else if (roll < 96) {
    read(`/api/v1/reports/organizations/${org}/summary`, 'reports', '/api/v1/reports/organizations/{id}/summary',
      who.extra);
  } else if (roll < 99) {
    const clinics = data.byOrg[org];
    const target = clinics[Math.floor(Math.random() * clinics.length)];
    const current = get(`/api/v1/clinics/${target.id}`, 'crud', '/api/v1/clinics/{id}', who.extra);
    if (current.status === 200) {
      const res = http.patch(`${BASE_URL}/api/v1/clinics/${target.id}`,
        JSON.stringify({ managerUserId: `user-${String(Math.floor(Math.random() * 1e6)).padStart(6, '0')}` }), {
          headers: headers(Object.assign({ 'Content-Type': 'application/merge-patch+json', 'If-Match': current.headers.Etag },
            who.extra)),
          tags: { kind: 'crud', name: 'PATCH /api/v1/clinics/{id}' },
        });
      // 412: another VU won the race; the documented client behaviour is to re-read.
      check(res, { 'patched 200 or 412': (r) => r.status === 200 || r.status === 412 });
    }
  } else {
    const code = `K6${Math.floor(Math.random() * 2 ** 32).toString(16)}`;
    const res = http.post(`${BASE_URL}/api/v1/organizations/${org}/clinics`, JSON.stringify({
      name: `Load test clinic ${code}`, code,
      address: { line1: '1 Test St', city: 'Austin', state: 'TX', postalCode: '73301' },
    }), {
      headers: headers(Object.assign({ 'Content-Type': 'application/json' }, who.extra)),
      tags: { kind: 'crud', name: 'POST /api/v1/organizations/{id}/clinics' },
    });
    if (check(res, { 'created 201': (r) => r.status === 201 })) {
      get(res.headers.Location, 'crud', '/api/v1/clinics/{id}', who.extra);
    }
  }
  sleep(0.1 + Math.random() * 0.4);
}
