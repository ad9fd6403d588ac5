// What the operator keeps in the user's own attributes: who owns the user
// (the same keys as the Rust SDK's ownership module), and what it manages
// inside it (attribute keys, role mappings, group memberships, required
// actions it applied, a password still to set). Kept in Keycloak, next to
// the user, so that it survives operator restarts and lost status writes.

export const PREFIX = 'keycloak.wasmop.dev/';

export const keys = {
  uid: `${PREFIX}owner-uid`,
  namespace: `${PREFIX}owner-namespace`,
  name: `${PREFIX}owner-name`,
  kind: `${PREFIX}owner-kind`,
  attributes: `${PREFIX}managed-attributes`,
  roles: `${PREFIX}managed-roles`,
  groups: `${PREFIX}managed-groups`,
  requiredActions: `${PREFIX}applied-required-actions`,
  passwordPending: `${PREFIX}initial-password-pending`,
};

export const OWNER_KEYS = [keys.uid, keys.namespace, keys.name, keys.kind];
export const BOOKKEEPING_KEYS = [keys.attributes, keys.roles, keys.groups, keys.requiredActions, keys.passwordPending];

/** First value of an attribute (users hold lists of strings; a plain string is read too). */
export function attribute(attributes, key) {
  if (!attributes || typeof attributes !== 'object') return undefined;
  const value = attributes[key];
  if (Array.isArray(value)) return typeof value[0] === 'string' ? value[0] : undefined;
  return typeof value === 'string' ? value : undefined;
}

/** The resource of a request, as an owner. */
export function ownerOf(parent) {
  const metadata = parent.metadata || {};
  return {
    uid: metadata.uid || '',
    namespace: metadata.namespace || '',
    name: metadata.name || '',
    kind: parent.kind || 'KeycloakUser',
  };
}

export function ownerAttributes(owner) {
  return {
    [keys.uid]: [owner.uid],
    [keys.namespace]: [owner.namespace],
    [keys.name]: [owner.name],
    [keys.kind]: [owner.kind],
  };
}

/** 'ours', 'unowned', or the other owner ({uid, namespace, name, kind}). */
export function ownership(owner, attributes) {
  const uid = attribute(attributes, keys.uid) || '';
  if (uid === '') return 'unowned';
  if (uid === owner.uid) return 'ours';
  return {
    uid,
    namespace: attribute(attributes, keys.namespace) || '',
    name: attribute(attributes, keys.name) || '',
    kind: attribute(attributes, keys.kind) || '',
  };
}

export const describeOwner = (o) => `${o.kind} ${o.namespace}/${o.name} (uid ${o.uid})`;

// ---- what the operator manages inside the user ----------------------------

/** A sorted, de-duplicated list. */
export const sorted = (values) => [...new Set(values)].sort();

function parsed(attributes, key, fallback) {
  const text = attribute(attributes, key);
  if (!text) return fallback;
  try {
    return JSON.parse(text);
  } catch {
    // Unreadable records count as empty: the operator then removes nothing,
    // which is the safe side.
    return fallback;
  }
}

const strings = (value) => (Array.isArray(value) ? value.filter((v) => typeof v === 'string') : []);

/**
 * Managed things as sets: attribute keys, realm role names, client roles as
 * "clientId/role" pairs kept apart ({clientId: [roles]}), group paths and the
 * required actions last applied.
 */
export function declared(spec) {
  const clients = {};
  for (const [client, roles] of Object.entries(spec.clientRoles || {})) {
    const names = sorted(strings(roles));
    if (names.length > 0) clients[client] = names;
  }
  return {
    attributes: sorted(Object.keys(spec.attributes || {})),
    realmRoles: sorted(strings(spec.realmRoles)),
    clientRoles: clients,
    groups: sorted(strings(spec.groups)),
    requiredActions: sorted(strings(spec.requiredActions)),
  };
}

export function recorded(attributes) {
  const roles = parsed(attributes, keys.roles, {});
  const clients = {};
  if (roles && typeof roles.clients === 'object' && roles.clients !== null) {
    for (const [client, names] of Object.entries(roles.clients)) {
      const list = sorted(strings(names));
      if (list.length > 0) clients[client] = list;
    }
  }
  return {
    attributes: sorted(strings(parsed(attributes, keys.attributes, []))),
    realmRoles: sorted(strings(roles && roles.realm)),
    clientRoles: clients,
    groups: sorted(strings(parsed(attributes, keys.groups, []))),
    requiredActions: sorted(strings(parsed(attributes, keys.requiredActions, []))),
  };
}

/** Both records together: what must be kept while sub-objects are added or removed. */
export function union(a, b) {
  const clients = {};
  for (const source of [a.clientRoles, b.clientRoles]) {
    for (const [client, names] of Object.entries(source)) {
      clients[client] = sorted([...(clients[client] || []), ...names]);
    }
  }
  return {
    attributes: sorted([...a.attributes, ...b.attributes]),
    realmRoles: sorted([...a.realmRoles, ...b.realmRoles]),
    clientRoles: clients,
    groups: sorted([...a.groups, ...b.groups]),
    requiredActions: b.requiredActions,
  };
}

/**
 * The bookkeeping attributes recording `managed` (and a pending password).
 * Empty records are left out: Keycloak replaces a user's attribute map with
 * the one it is sent, so a key left out is removed.
 */
export function bookkeepingAttributes(managed, passwordPending) {
  const out = {};
  if (managed.attributes.length > 0) out[keys.attributes] = [JSON.stringify(managed.attributes)];
  const hasClients = Object.keys(managed.clientRoles).length > 0;
  if (managed.realmRoles.length > 0 || hasClients) {
    const roles = {};
    if (managed.realmRoles.length > 0) roles.realm = managed.realmRoles;
    if (hasClients) {
      roles.clients = {};
      for (const client of Object.keys(managed.clientRoles).sort()) roles.clients[client] = managed.clientRoles[client];
    }
    out[keys.roles] = [JSON.stringify(roles)];
  }
  if (managed.groups.length > 0) out[keys.groups] = [JSON.stringify(managed.groups)];
  if (managed.requiredActions.length > 0) out[keys.requiredActions] = [JSON.stringify(managed.requiredActions)];
  if (passwordPending) out[keys.passwordPending] = ['true'];
  return out;
}
