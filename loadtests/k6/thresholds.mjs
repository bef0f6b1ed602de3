// Prints the thresholds each k6 script really ends up with, as JSON: the scripts' own code runs
// under Node with the k6 modules stubbed (k6 itself cannot be installed on every machine).
// tests/unit/test_budget_table.py compares the output with budgets.json.
//
//   node loadtests/k6/thresholds.mjs loadtests/k6/smoke.js loadtests/k6/lists.js loadtests/k6/mix.js

import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const stubs = {
  k6: 'export const check = () => true; export const fail = (m) => { throw new Error(m); };'
    + ' export const group = (_, f) => f(); export const sleep = () => {};',
  'k6/http': 'export default { get() {}, post() {}, patch() {}, del() {} };',
  'k6/metrics': 'export class Rate { constructor(name) { this.name = name; } add() {} }'
    + ' export class Trend extends Rate {} export class Counter extends Rate {}',
};
const hooks = `
const stubs = ${JSON.stringify(stubs)};
export async function resolve(specifier, context, next) {
  if (specifier in stubs) {
    return { url: 'data:text/javascript,' + encodeURIComponent(stubs[specifier]), shortCircuit: true };
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  // The k6 scripts are ES modules with a .js suffix and no package.json saying so.
  if (url.startsWith('file:') && url.endsWith('.js')) {
    return { ...(await next(url, { ...context, format: 'module' })), format: 'module' };
  }
  return next(url, context);
}`;
register('data:text/javascript,' + encodeURIComponent(hooks), import.meta.url);
globalThis.__ENV = {};
globalThis.__VU = 1;
globalThis.__ITER = 0;

const found = {};
for (const script of process.argv.slice(2)) {
  const module = await import(pathToFileURL(resolve(script)).href);
  found[script.split('/').pop()] = module.options.thresholds;
}
process.stdout.write(JSON.stringify(found) + '\n');
