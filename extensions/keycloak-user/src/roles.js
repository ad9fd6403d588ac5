// Role mappings of a user: realm roles and client roles. What the spec lists
// is mapped; a mapping is removed only when the operator recorded it as one
// it manages and the spec no longer lists it. Default roles and mappings made
// by hand are never touched.

import { get, invalidSpec, list, send, ok, unexpected } from './host.js';

const MAPPINGS = '/realms/{realm}/users/{id}/role-mappings';
const REALM_MAPPINGS = '/realms/{realm}/users/{id}/role-mappings/realm';
const CLIENT_MAPPINGS = '/realms/{realm}/users/{id}/role-mappings/clients/{client}';
const REALM_ROLE = '/realms/{realm}/roles/{name}';
const REALM_ROLES = '/realms/{realm}/roles';
const CLIENT_ROLE = '/realms/{realm}/clients/{client}/roles/{name}';
const CLIENT_ROLES = '/realms/{realm}/clients/{client}/roles';
const CLIENTS = '/realms/{realm}/clients';

// The host percent-encodes every byte of a path value outside RFC 3986's
// unreserved set, dots included, and Keycloak refuses a path with an encoded
// dot ("Request path not normalized"). A role such as `orders.read` is
// therefore looked up by search, and only a plain name by its path.
const PLAIN = /^[A-Za-z0-9_~-]+$/;

function findRole(byName, search, params, name) {
  if (PLAIN.test(name)) return get(byName, [...params, name]);
  const found = list(search, params, { search: name, first: 0, max: 1000 });
  return found.find((role) => role.name === name) || null;
}

const isEmpty = (m) => m.realmRoles.length === 0 && Object.keys(m.clientRoles).length === 0;

/** The client's internal id, or an invalid-spec error naming it. */
function clientUuid(realm, clientId) {
  const found = list(CLIENTS, [realm], { clientId });
  const client = found.find((c) => c.clientId === clientId && typeof c.id === 'string');
  if (!client) throw invalidSpec('ClientNotFound', `realm ${realm} has no client ${JSON.stringify(clientId)} (spec.clientRoles)`);
  return client.id;
}

/**
 * Converges the role mappings of user `id`. `want` is what the spec lists,
 * `recorded` what the operator manages (both: {realmRoles, clientRoles}).
 * Returns the names of what changed ("realmRoles.x", "clientRoles.app/y").
 * Reads nothing when neither lists a role.
 */
export function convergeRoles(realm, id, want, recorded) {
  if (isEmpty(want) && isEmpty(recorded)) return [];
  const mappings = get(MAPPINGS, [realm, id]) || {};
  const realmHave = new Map((mappings.realmMappings || []).map((r) => [r.name, r]));
  const clientHave = new Map();
  for (const [clientId, entry] of Object.entries(mappings.clientMappings || {})) {
    clientHave.set(clientId, {
      uuid: entry.id,
      roles: new Map((entry.mappings || []).map((r) => [r.name, r])),
    });
  }

  // Look everything up before the first write, so a missing role or client
  // fails the reconcile without a half-done change.
  const plan = [];
  const realmAdd = want.realmRoles.filter((name) => !realmHave.has(name));
  if (realmAdd.length > 0) {
    const bodies = realmAdd.map((name) => {
      const role = findRole(REALM_ROLE, REALM_ROLES, [realm], name);
      if (!role) throw invalidSpec('RoleNotFound', `realm ${realm} has no realm role ${JSON.stringify(name)} (spec.realmRoles)`);
      return role;
    });
    plan.push({ method: 'post', route: REALM_MAPPINGS, params: [realm, id], body: bodies, labels: realmAdd.map((n) => `realmRoles.${n}`) });
  }
  const realmRemove = recorded.realmRoles.filter((name) => !want.realmRoles.includes(name) && realmHave.has(name));
  if (realmRemove.length > 0) {
    const bodies = realmRemove.map((name) => realmHave.get(name));
    plan.push({ method: 'delete', route: REALM_MAPPINGS, params: [realm, id], body: bodies, labels: realmRemove.map((n) => `realmRoles.${n}`) });
  }

  const clients = new Set([...Object.keys(want.clientRoles), ...Object.keys(recorded.clientRoles)]);
  for (const clientId of [...clients].sort()) {
    const wanted = want.clientRoles[clientId] || [];
    const managed = recorded.clientRoles[clientId] || [];
    const have = clientHave.get(clientId);
    const haveRoles = have ? have.roles : new Map();
    const add = wanted.filter((name) => !haveRoles.has(name));
    const remove = managed.filter((name) => !wanted.includes(name) && haveRoles.has(name));
    if (add.length > 0) {
      const uuid = have && have.uuid ? have.uuid : clientUuid(realm, clientId);
      const bodies = add.map((name) => {
        const role = findRole(CLIENT_ROLE, CLIENT_ROLES, [realm, uuid], name);
        if (!role) {
          throw invalidSpec('RoleNotFound', `client ${clientId} of realm ${realm} has no role ${JSON.stringify(name)} (spec.clientRoles)`);
        }
        return role;
      });
      plan.push({ method: 'post', route: CLIENT_MAPPINGS, params: [realm, id, uuid], body: bodies, labels: add.map((n) => `clientRoles.${clientId}/${n}`) });
    }
    if (remove.length > 0) {
      const bodies = remove.map((name) => haveRoles.get(name));
      plan.push({ method: 'delete', route: CLIENT_MAPPINGS, params: [realm, id, have.uuid], body: bodies, labels: remove.map((n) => `clientRoles.${clientId}/${n}`) });
    }
  }

  const changed = [];
  for (const step of plan) {
    const reply = send(step.method, step.route, step.params, [], step.body);
    if (!ok(reply)) throw unexpected(`${step.method === 'post' ? 'mapping' : 'unmapping'} roles of the user`, reply);
    changed.push(...step.labels);
  }
  return changed;
}
