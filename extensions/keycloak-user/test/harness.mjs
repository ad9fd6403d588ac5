// Runs the built component (dist/keycloak_user.wasm) in Node: jco transpiles it
// to core Wasm plus JS glue once, and every call gets a fresh instance, as in
// the operator's sandbox. The host's imports are served by a FakeKeycloak, a
// map of Secrets and a log array.

import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { transpile } from '@bytecodealliance/jco';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wasm = join(root, 'dist', 'keycloak_user.wasm');
const out = join(root, 'dist', 'transpiled');

async function load() {
  if (!existsSync(wasm)) throw new Error(`${wasm} is missing: run ./build first`);
  const stamp = join(out, 'stamp');
  const built = String(statSync(wasm).mtimeMs);
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== built) {
    const { files } = await transpile(readFileSync(wasm), { name: 'component', instantiation: { tag: 'sync' }, noTypescript: true });
    for (const [name, data] of Object.entries(files)) {
      mkdirSync(dirname(join(out, name)), { recursive: true });
      writeFileSync(join(out, name), data);
    }
    writeFileSync(stamp, built);
  }
  const glue = await import(pathToFileURL(join(out, 'component.js')).href);
  const modules = new Map();
  const getCoreModule = (path) => {
    if (!modules.has(path)) modules.set(path, new WebAssembly.Module(readFileSync(join(out, path))));
    return modules.get(path);
  };
  return { glue, getCoreModule };
}

const loaded = await load();

/** A host for one test: Keycloak, Secrets, and what the component logged. */
export function host({ keycloak, secrets = {} }) {
  const logs = [];
  const imports = {
    'keycloak-operator:reconciler/log': { write: (level, message) => logs.push({ level, message }) },
    'keycloak-operator:reconciler/keycloak': { send: (request) => keycloak.send(request) },
    'keycloak-operator:reconciler/secrets': {
      read: (name, key) => {
        const value = secrets[name] && secrets[name][key];
        if (value === undefined) throw { payload: { tag: 'not-found', val: `no key ${key} in Secret ${name}` } };
        return value;
      },
    },
    'keycloak-operator:reconciler/types': {},
  };
  const fresh = () => loaded.glue.instantiate(loaded.getCoreModule, imports).reconciler;
  const call = (fn, request) => {
    try {
      return { ok: fresh()[fn](request) };
    } catch (e) {
      if (e && e.payload) return { err: e.payload };
      return { trap: e, logs };
    }
  };
  return {
    logs,
    describe: () => fresh().describe(),
    reconcile: (request) => call('reconcile', request),
    finalize: (request) => call('finalize', request),
  };
}

/**
 * A KeycloakUser as the host passes it. With `observedGeneration`, its status
 * says that generation was reconciled: Ready unless `ready` is false (a
 * failed reconcile, which the host also records).
 */
export function resource(spec, { uid = 'uid-1', name = 'alice', namespace = 'team-a', generation = 1, observedGeneration, ready = true } = {}) {
  const parent = {
    apiVersion: 'users.extensions.wasmop.dev/v1alpha1',
    kind: 'KeycloakUser',
    metadata: { name, namespace, uid, generation },
    spec: { realmRef: { name: 'shop' }, ...spec },
  };
  if (observedGeneration !== undefined) {
    const condition = { type: 'Ready', status: ready ? 'True' : 'False', observedGeneration };
    parent.status = { observedGeneration, conditions: [condition] };
  }
  return {
    parent: JSON.stringify(parent),
    children: [],
    related: [],
    target: { keycloak: 'team-a/sso', url: 'http://keycloak.example', realm: 'shop' },
  };
}
