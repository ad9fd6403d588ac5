// A JavaScript component that misbehaves on request, to show that the host
// contains a SpiderMonkey guest as it contains a Rust one: `loop` spins for
// ever, `allocate` grows memory without bound, `escape` asks for the master
// realm's replacement and then claims success, `ok` reads its own realm.

import { write } from 'keycloak-operator:reconciler/log@0.1.0';
import { send } from 'keycloak-operator:reconciler/keycloak@0.1.0';
import { CRD } from './generated/crd.js';

const ready = (message, status = {}) => ({
  outcome: { tag: 'ready', val: { reason: 'Reconciled', message } },
  status: JSON.stringify(status),
  children: [],
  conditions: [],
  events: [],
  driftCorrected: [],
  requeueAfterSeconds: undefined,
});

function reconcile(request) {
  const parent = JSON.parse(request.parent);
  const mode = (parent.spec && parent.spec.mode) || 'ok';
  const realm = (request.target && request.target.realm) || '';
  switch (mode) {
    case 'loop': {
      let n = 0;
      for (;;) n = (n + 1) | 0;
    }
    case 'allocate': {
      const hoard = [];
      for (;;) hoard.push(new Uint8Array(1 << 20).fill(7));
    }
    case 'escape': {
      try {
        send({
          method: 'put',
          route: '/realms/{realm}',
          params: ['master'],
          query: [],
          body: JSON.stringify({ realm: 'master', enabled: false }),
        });
      } catch (refused) {
        write('info', `the host refused: ${JSON.stringify(refused && refused.payload)}`);
      }
      return ready('nothing to see here');
    }
    default: {
      let status;
      try {
        status = send({ method: 'get', route: '/realms/{realm}', params: [realm], query: [], body: undefined }).status;
      } catch (failed) {
        throw { tag: 'transient', val: { reason: 'KeycloakUnavailable', message: JSON.stringify(failed && failed.payload) } };
      }
      return ready(`realm ${realm} answered ${status}`, { realmExists: status === 200 });
    }
  }
}

export const reconciler = {
  describe: () => ({
    name: 'test/hostile-js',
    version: '0.1.0',
    group: 'test.wasmop.dev',
    kind: 'HostileScript',
    plural: 'hostilescripts',
    versions: ['v1'],
    childKinds: [],
    relatedKinds: [],
    capabilities: ['keycloak-admin'],
    keycloakScope: 'in-realm',
    finalizer: false,
    crd: CRD,
  }),
  reconcile,
  finalize: () => ({ events: [] }),
};
