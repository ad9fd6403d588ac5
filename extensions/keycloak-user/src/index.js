// The component's export: the `reconciler` interface of the WIT world
// `reconciler-component`. componentize-js turns this object's functions into
// the component's exports; a function whose WIT result is `err` signals it by
// throwing the error variant ({tag, val}).

import { isReconcileError, log } from './host.js';
import { reconcile, finalize } from './user.js';
import { CRD, NAME, VERSION } from './generated/meta.js';

/**
 * Our own failures go to the host as they are. Anything else is a bug: its
 * message goes to the host's log (at error level, where the host picks it up
 * for the ComponentTrapped condition), and rethrowing it traps the call, as a
 * panic does in a Rust component.
 */
function guarded(what, fn) {
  return (request) => {
    try {
      return fn(request);
    } catch (thrown) {
      if (isReconcileError(thrown)) throw thrown;
      const text = thrown instanceof Error ? `${thrown.name}: ${thrown.message}\n${thrown.stack || ''}` : String(thrown);
      log.error(`${what} failed: ${text}`);
      throw thrown;
    }
  };
}

export const reconciler = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      group: 'users.extensions.wasmop.dev',
      kind: 'KeycloakUser',
      plural: 'keycloakusers',
      versions: ['v1alpha1'],
      childKinds: [],
      relatedKinds: [],
      capabilities: ['keycloak-admin', 'read-secrets'],
      keycloakScope: 'in-realm',
      finalizer: true,
      crd: CRD,
    };
  },
  reconcile: guarded('reconcile', reconcile),
  finalize: guarded('finalize', finalize),
};
