// Tests of the built component against a fake Keycloak (see harness.mjs).
// Run with `npm test` after `./build`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeKeycloak } from './fake-keycloak.mjs';
import { host, resource } from './harness.mjs';

const PASSWORD = 'correct-horse-battery';

function bed() {
  const keycloak = new FakeKeycloak('shop');
  keycloak.addRealmRole('shopper');
  keycloak.addRealmRole('orders.read');
  keycloak.addClient('storefront', ['viewer', 'editor']);
  keycloak.addGroup('/staff/ops');
  keycloak.addGroup('/ops');
  const h = host({ keycloak, secrets: { 'alice-password': { password: PASSWORD } } });
  return { keycloak, h };
}

const fullSpec = () => ({
  username: 'alice',
  email: 'Alice@Example.org',
  emailVerified: true,
  firstName: 'Alice',
  lastName: 'Liddell',
  enabled: true,
  attributes: { team: ['shop', 'ops'], department: ['sales'] },
  requiredActions: ['CONFIGURE_TOTP'],
  realmRoles: ['shopper', 'orders.read'],
  clientRoles: { storefront: ['viewer'] },
  groups: ['/staff/ops'],
  initialPassword: { secretName: 'alice-password', key: 'password', temporary: false },
  deletionPolicy: 'Delete',
});

function converged(h, spec, options = {}) {
  const first = h.reconcile(resource(spec, options));
  assert.ok(first.ok, JSON.stringify(first.err || first.logs));
  return first.ok;
}

test('describe names the kind, its needs and its CRD', () => {
  const { h } = bed();
  const d = h.describe();
  assert.equal(d.group, 'users.extensions.wasmop.dev');
  assert.equal(d.kind, 'KeycloakUser');
  assert.equal(d.plural, 'keycloakusers');
  assert.deepEqual(d.versions, ['v1alpha1']);
  assert.deepEqual(d.capabilities, ['keycloak-admin', 'read-secrets']);
  assert.equal(d.keycloakScope, 'in-realm');
  assert.equal(d.finalizer, true);
  assert.match(d.crd, /name: keycloakusers\.users\.extensions\.wasmop\.dev/);
});

test('creates the user with every field, its roles, groups and password', () => {
  const { keycloak, h } = bed();
  const out = converged(h, fullSpec());
  assert.equal(out.outcome.tag, 'ready');
  const user = keycloak.userNamed('alice');
  assert.equal(JSON.parse(out.status).userId, user.id);
  assert.equal(user.email, 'alice@example.org');
  assert.equal(user.firstName, 'Alice');
  assert.equal(user.emailVerified, true);
  assert.deepEqual(user.attributes.team, ['ops', 'shop']);
  assert.deepEqual(user.attributes['keycloak.wasmop.dev/owner-uid'], ['uid-1']);
  assert.deepEqual(user.attributes['keycloak.wasmop.dev/owner-kind'], ['KeycloakUser']);
  assert.equal(user.attributes['keycloak.wasmop.dev/initial-password-pending'], undefined);
  assert.deepEqual(user.requiredActions, ['CONFIGURE_TOTP']);
  assert.deepEqual([...keycloak.realmMappings.get(user.id)].sort(), ['orders.read', 'shopper']);
  const [[, storefront]] = [...keycloak.clientMappings.get(user.id)];
  assert.deepEqual([...storefront], ['viewer']);
  assert.deepEqual([...keycloak.memberships.get(user.id)], [keycloak.addGroup('/staff/ops').id]);
  assert.deepEqual(keycloak.passwords.get(user.id), { value: PASSWORD, temporary: false });
  assert.equal(keycloak.policy, 'ADMIN_EDIT', 'the realm now keeps unmanaged attributes');
  assert.deepEqual(out.events.map((e) => e.reason), ['UserProfileUpdated', 'InitialPasswordSet', 'UserCreated']);
  assert.deepEqual(out.driftCorrected, []);
});

test('steady state reads only, and never sends the password again', () => {
  const { keycloak, h } = bed();
  converged(h, fullSpec());
  keycloak.log = [];
  const again = converged(h, fullSpec(), { observedGeneration: 1 });
  assert.deepEqual(keycloak.writes(), []);
  assert.deepEqual(again.events, []);
  assert.deepEqual(
    keycloak.log.map((r) => r.route),
    ['/realms/{realm}/users', '/realms/{realm}/users/{id}/role-mappings', '/realms/{realm}/users/{id}/groups'],
  );
});

test('a user without roles or groups costs one read per resync', () => {
  const { keycloak, h } = bed();
  converged(h, { username: 'bob', firstName: 'Bob' });
  keycloak.log = [];
  converged(h, { username: 'bob', firstName: 'Bob' }, { observedGeneration: 1 });
  assert.equal(keycloak.log.length, 1);
});

test('changes made in Keycloak are put back and reported as drift', () => {
  const { keycloak, h } = bed();
  converged(h, fullSpec());
  const user = keycloak.userNamed('alice');
  user.firstName = 'Mallory';
  user.attributes.team = ['evil'];
  user.attributes['set-by-hand'] = ['kept'];
  keycloak.realmMappings.get(user.id).delete('shopper');
  keycloak.memberships.get(user.id).clear();
  const out = converged(h, fullSpec(), { observedGeneration: 1 });
  assert.deepEqual(out.driftCorrected.sort(), ['attributes.team', 'firstName', 'groups./staff/ops', 'realmRoles.shopper']);
  assert.deepEqual(out.events.map((e) => e.reason), ['DriftCorrected']);
  const now = keycloak.userNamed('alice');
  assert.equal(now.firstName, 'Alice');
  assert.equal(now.lastName, 'Liddell', 'fields not changed survive the update');
  assert.deepEqual(now.attributes['set-by-hand'], ['kept'], 'unmanaged attributes are kept');
  assert.ok(keycloak.realmMappings.get(user.id).has('shopper'));
  assert.equal(keycloak.passwords.get(user.id).value, PASSWORD);
});

test('a spec changed while the last reconcile failed is an update, not drift', () => {
  const { h } = bed();
  converged(h, { username: 'bob', firstName: 'Bob' });
  // The host recorded generation 2 when its reconcile failed (Keycloak was down).
  const out = converged(h, { username: 'bob', firstName: 'Robert' }, { generation: 2, observedGeneration: 2, ready: false });
  assert.deepEqual(out.driftCorrected, []);
  assert.deepEqual(out.events.map((e) => e.reason), ['UserUpdated']);
});

test('an attribute Keycloak does not keep stalls the resource instead of being rewritten for ever', () => {
  const { h } = bed();
  const out = h.reconcile(resource({ username: 'alice', attributes: { locale: ['en'] } }));
  assert.equal(out.err.tag, 'invalid-spec');
  assert.equal(out.err.val.reason, 'NotKeptByKeycloak');
  assert.match(out.err.val.message, /attributes\.locale/);
});

test('a spec change is an update, not drift', () => {
  const { keycloak, h } = bed();
  converged(h, fullSpec());
  const out = converged(h, { ...fullSpec(), email: 'alice@new.example' }, { generation: 2, observedGeneration: 1 });
  assert.deepEqual(out.driftCorrected, []);
  assert.deepEqual(out.events.map((e) => e.reason), ['UserUpdated']);
  assert.equal(keycloak.userNamed('alice').email, 'alice@new.example');
});

test('only what the operator manages is removed', () => {
  const { keycloak, h } = bed();
  converged(h, fullSpec());
  const user = keycloak.userNamed('alice');
  // Mapped by hand: never the operator's to remove.
  keycloak.realmMappings.get(user.id).add('orders.read');
  keycloak.memberships.get(user.id).add(keycloak.addGroup('/ops').id);
  const spec = { ...fullSpec(), realmRoles: ['orders.read'], clientRoles: {}, groups: [], attributes: { department: ['sales'] } };
  const out = converged(h, spec, { generation: 2, observedGeneration: 1 });
  assert.deepEqual(out.events.map((e) => e.reason), ['UserUpdated']);
  assert.deepEqual([...keycloak.realmMappings.get(user.id)], ['orders.read']);
  assert.deepEqual([...[...keycloak.clientMappings.get(user.id).values()][0]], []);
  assert.deepEqual([...keycloak.memberships.get(user.id)], [keycloak.addGroup('/ops').id]);
  const now = keycloak.userNamed('alice');
  assert.equal(now.attributes.team, undefined, 'an attribute dropped from the spec is removed');
  assert.deepEqual(JSON.parse(now.attributes['keycloak.wasmop.dev/managed-roles'][0]), { realm: ['orders.read'] });
  assert.equal(now.attributes['keycloak.wasmop.dev/managed-groups'], undefined);
  keycloak.log = [];
  converged(h, spec, { generation: 2, observedGeneration: 2 });
  assert.deepEqual(keycloak.writes(), [], 'and then it is steady again');
});

test('a user owned by another resource is left untouched', () => {
  const { keycloak, h } = bed();
  converged(h, fullSpec(), { uid: 'someone-else' });
  keycloak.log = [];
  const out = h.reconcile(resource(fullSpec()));
  assert.equal(out.err.tag, 'permanent');
  assert.equal(out.err.val.reason, 'Conflict');
  assert.match(out.err.val.message, /someone-else/);
  assert.deepEqual(keycloak.writes(), []);
  const gone = h.finalize(resource(fullSpec()));
  assert.equal(gone.ok.events[0].reason, 'UserNotOwned');
  assert.ok(keycloak.userNamed('alice'), 'finalize does not delete it either');
});

test('an unowned user is adopted only when asked', () => {
  const { keycloak, h } = bed();
  keycloak.policy = 'ENABLED';
  keycloak.addUser({ username: 'carol', firstName: 'Carol', attributes: { mine: ['yes'] } });
  const refused = h.reconcile(resource({ username: 'carol' }));
  assert.equal(refused.err.val.reason, 'Conflict');
  assert.match(refused.err.val.message, /adoptExisting/);
  assert.deepEqual(keycloak.writes(), []);
  const out = converged(h, { username: 'carol', lastName: 'C', adoptExisting: true, initialPassword: { secretName: 'alice-password', key: 'password' } });
  assert.deepEqual(out.events.map((e) => e.reason), ['UserAdopted']);
  const carol = keycloak.userNamed('carol');
  assert.deepEqual(carol.attributes['keycloak.wasmop.dev/owner-uid'], ['uid-1']);
  assert.deepEqual(carol.attributes.mine, ['yes']);
  assert.equal(carol.firstName, 'Carol');
  assert.equal(keycloak.passwords.get(carol.id), undefined, 'an adopted user keeps its password');
});

test('a user that appears between the lookup and the creation is judged like any other', () => {
  const { keycloak, h } = bed();
  const send = keycloak.send.bind(keycloak);
  keycloak.send = (request) => {
    if (request.method === 'post' && request.route === '/realms/{realm}/users') {
      keycloak.addUser({ username: 'alice', attributes: {} });
    }
    return send(request);
  };
  const out = h.reconcile(resource(fullSpec()));
  assert.equal(out.err.val.reason, 'Conflict');
  assert.match(out.err.val.message, /adoptExisting/);
});

test('a missing role, client or group is an invalid spec naming it, before any change', () => {
  for (const [patch, reason, name] of [
    [{ realmRoles: ['nope'] }, 'RoleNotFound', 'nope'],
    [{ realmRoles: ['no.such.role'] }, 'RoleNotFound', 'no.such.role'],
    [{ clientRoles: { storefront: ['nope'] } }, 'RoleNotFound', 'nope'],
    [{ clientRoles: { ghost: ['viewer'] } }, 'ClientNotFound', 'ghost'],
    [{ groups: ['/staff/nope'] }, 'GroupNotFound', '/staff/nope'],
    [{ requiredActions: ['BOGUS'] }, 'RequiredActionNotFound', 'BOGUS'],
    [{ requiredActions: ['TERMS_AND_CONDITIONS'] }, 'RequiredActionDisabled', 'TERMS_AND_CONDITIONS'],
  ]) {
    const { keycloak, h } = bed();
    converged(h, { username: 'alice' });
    keycloak.log = [];
    const out = h.reconcile(resource({ username: 'alice', ...patch }, { generation: 2, observedGeneration: 1 }));
    assert.equal(out.err && out.err.tag, 'invalid-spec', JSON.stringify(patch));
    assert.equal(out.err.val.reason, reason);
    assert.ok(out.err.val.message.includes(name), out.err.val.message);
    const roleOrGroupWrites = keycloak.writes().filter((w) => !w.route.endsWith('/users/{id}'));
    assert.deepEqual(roleOrGroupWrites, [], JSON.stringify(patch));
  }
});

test('groups are found by full path at any depth', () => {
  const { keycloak, h } = bed();
  const deep = keycloak.addGroup('/a/b/ops');
  converged(h, { username: 'alice', groups: ['/a/b/ops', '/ops'] });
  const user = keycloak.userNamed('alice');
  assert.deepEqual([...keycloak.memberships.get(user.id)].sort(), [deep.id, keycloak.addGroup('/ops').id].sort());
});

test('a missing password Secret is waited for, and no user is created meanwhile', () => {
  const { keycloak, h } = bed();
  const out = h.reconcile(resource({ ...fullSpec(), initialPassword: { secretName: 'later', key: 'password' } }));
  assert.equal(out.err.tag, 'transient');
  assert.equal(out.err.val.reason, 'InitialPasswordSecretNotFound');
  assert.equal(keycloak.userNamed('alice'), null);
});

test('a password Keycloak refuses is retried without creating the user twice, and a temporary one keeps UPDATE_PASSWORD', () => {
  const keycloak = new FakeKeycloak('shop');
  const secrets = { s: { p: 'abc' } };
  const h = host({ keycloak, secrets });
  const spec = { username: 'dave', requiredActions: [], initialPassword: { secretName: 's', key: 'p', temporary: true } };
  const first = h.reconcile(resource(spec));
  assert.equal(first.err.tag, 'invalid-spec');
  assert.equal(first.err.val.reason, 'KeycloakRejected');
  assert.ok(!JSON.stringify(first).includes('abc'));
  const dave = keycloak.userNamed('dave');
  assert.deepEqual(dave.attributes['keycloak.wasmop.dev/initial-password-pending'], ['true']);
  secrets.s.p = 'long-enough';
  const second = converged(h, spec);
  assert.deepEqual(second.events.map((e) => e.reason), ['InitialPasswordSet']);
  const now = keycloak.userNamed('dave');
  assert.deepEqual(keycloak.passwords.get(now.id), { value: 'long-enough', temporary: true });
  assert.deepEqual(now.requiredActions, ['UPDATE_PASSWORD']);
  assert.equal(now.attributes['keycloak.wasmop.dev/initial-password-pending'], undefined);
  keycloak.log = [];
  converged(h, spec, { observedGeneration: 1 });
  assert.deepEqual(keycloak.writes(), []);
});

test('required actions are applied when the list changes, not re-imposed once done', () => {
  const { keycloak, h } = bed();
  converged(h, { username: 'alice', requiredActions: ['VERIFY_EMAIL'] });
  const user = keycloak.userNamed('alice');
  assert.deepEqual(user.requiredActions, ['VERIFY_EMAIL']);
  user.requiredActions = []; // the user verified the address
  keycloak.log = [];
  converged(h, { username: 'alice', requiredActions: ['VERIFY_EMAIL'] }, { observedGeneration: 1 });
  assert.deepEqual(keycloak.writes(), []);
  user.requiredActions = ['UPDATE_PROFILE']; // set by an admin
  converged(h, { username: 'alice', requiredActions: ['CONFIGURE_TOTP'] }, { generation: 2, observedGeneration: 1 });
  assert.deepEqual(keycloak.userNamed('alice').requiredActions.sort(), ['CONFIGURE_TOTP', 'UPDATE_PROFILE']);
});

test('a realm whose profile only lets admins view unmanaged attributes is refused', () => {
  const { keycloak, h } = bed();
  keycloak.policy = 'ADMIN_VIEW';
  const out = h.reconcile(resource({ username: 'alice' }));
  assert.equal(out.err.tag, 'permanent');
  assert.equal(out.err.val.reason, 'UnmanagedAttributesReadOnly');
  assert.equal(keycloak.userNamed('alice'), null);
});

test('finalize deletes an owned user, or releases it with Retain', () => {
  const { keycloak, h } = bed();
  converged(h, fullSpec());
  const deleted = h.finalize(resource(fullSpec()));
  assert.deepEqual(deleted.ok.events.map((e) => e.reason), ['UserDeleted']);
  assert.equal(keycloak.userNamed('alice'), null);
  assert.deepEqual(h.finalize(resource(fullSpec())).ok.events.map((e) => e.reason), ['UserAlreadyGone']);

  const retained = { ...fullSpec(), deletionPolicy: 'Retain' };
  converged(h, retained);
  const out = h.finalize(resource(retained));
  assert.deepEqual(out.ok.events.map((e) => e.reason), ['UserRetained']);
  const kept = keycloak.userNamed('alice');
  assert.deepEqual(kept.attributes, { department: ['sales'], team: ['ops', 'shop'] });
  assert.equal(kept.firstName, 'Alice');
  assert.ok(keycloak.realmMappings.get(kept.id).has('shopper'), 'role mappings stay');
  const again = h.reconcile(resource({ username: 'alice' }, { uid: 'uid-2' }));
  assert.equal(again.err.val.reason, 'Conflict', 'released: adoption needs adoptExisting');
});

test('Keycloak being down is transient, the host refusing a request is a scope violation', () => {
  const { keycloak, h } = bed();
  keycloak.unavailable = true;
  const down = h.reconcile(resource(fullSpec()));
  assert.equal(down.err.tag, 'transient');
  assert.equal(down.err.val.reason, 'KeycloakUnavailable');
  keycloak.unavailable = false;
  const req = resource(fullSpec());
  req.target.realm = 'elsewhere';
  const refused = h.reconcile(req);
  assert.equal(refused.err.tag, 'permanent');
  assert.equal(refused.err.val.reason, 'ScopeViolation');
});

test('the password never reaches logs, status, events or errors', () => {
  const { keycloak, h } = bed();
  const out = converged(h, fullSpec());
  const seen = JSON.stringify([h.logs, out]);
  assert.ok(!seen.includes(PASSWORD));
  const resets = keycloak.log.filter((r) => r.route.endsWith('/reset-password'));
  assert.equal(resets.length, 1);
});

test('a malformed spec or request is an invalid spec, not a trap', () => {
  const { h } = bed();
  const req = resource(fullSpec());
  req.parent = JSON.stringify({ ...JSON.parse(req.parent), spec: { ...fullSpec(), attributes: { team: 'not-a-list' } } });
  const out = h.reconcile(req);
  assert.equal(out.err.tag, 'invalid-spec');
  assert.equal(out.err.val.reason, 'InvalidSpec');
  const garbled = h.reconcile({ ...resource(fullSpec()), parent: '{' });
  assert.equal(garbled.err.val.reason, 'InvalidRequest');
});
