// The KeycloakUser reconciler: finds the user by username, creates or adopts
// it, records ownership in its attributes, and converges the managed fields,
// attributes, required actions, role mappings and group memberships, reading
// before it writes so that steady state sends no write at all.
//
// What Keycloak 26 does that shapes this code (checked on 26.7.3):
// - With the declarative user profile (always on), attributes the profile does
//   not declare are "unmanaged", and with the default policy they are dropped
//   without an error, ownership records included. The component switches a
//   realm that has no policy to ADMIN_EDIT (admins may read and write them,
//   users do not see them) before it creates or adopts a user.
// - PUT /users/{id} with an `attributes` map replaces the whole map, and the
//   profile's own attributes (email, firstName, lastName) count as attributes:
//   left out, they are removed. Every update therefore sends the user's
//   current fields and attributes, with the managed ones changed.
// - Keycloak keeps e-mail addresses in lower case, does not keep the order of
//   an attribute's values, and silently drops a required action it does not
//   know or has disabled.
// - A temporary password adds UPDATE_PASSWORD to the required actions.

import {
  createdId,
  get,
  invalidSpec,
  list,
  log,
  permanent,
  readSecret,
  send,
  transient,
  unexpected,
  write2xx,
  ok,
} from './host.js';
import {
  BOOKKEEPING_KEYS,
  OWNER_KEYS,
  PREFIX,
  attribute,
  bookkeepingAttributes,
  declared,
  describeOwner,
  keys,
  ownerAttributes,
  ownerOf,
  ownership,
  recorded,
  sorted,
  union,
} from './records.js';
import { convergeRoles } from './roles.js';
import { convergeGroups } from './groups.js';

const USERS = '/realms/{realm}/users';
const USER = '/realms/{realm}/users/{id}';
const RESET_PASSWORD = '/realms/{realm}/users/{id}/reset-password';
const PROFILE = '/realms/{realm}/users/profile';
const REQUIRED_ACTIONS = '/realms/{realm}/authentication/required-actions';

/** Fields of the user representation carried over on every update. */
const CARRIED = ['id', 'username', 'email', 'firstName', 'lastName', 'enabled', 'emailVerified', 'requiredActions', 'federationLink'];
const PROFILE_FIELDS = ['username', 'email', 'firstName', 'lastName'];

// ---- the request ----------------------------------------------------------

function parse(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw invalidSpec('InvalidRequest', `the host sent ${what} that is not JSON: ${e.message}`);
  }
}

function realmOf(request) {
  const realm = request.target && request.target.realm;
  if (!realm) throw transient('RealmNotResolved', "the host did not resolve the user's realm");
  return realm;
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isStrings = (v) => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** The spec, checked beyond what the CRD's schema already enforces. */
export function readSpec(parent) {
  const spec = isObject(parent.spec) ? parent.spec : {};
  const bad = (message) => invalidSpec('InvalidSpec', message);
  if (typeof spec.username !== 'string' || spec.username === '') throw bad('spec.username is required');
  if (spec.username !== spec.username.toLowerCase()) {
    throw bad(`spec.username ${JSON.stringify(spec.username)} must be lower-case: Keycloak stores usernames in lower case`);
  }
  for (const field of ['email', 'firstName', 'lastName']) {
    if (spec[field] !== undefined && spec[field] !== null && typeof spec[field] !== 'string') throw bad(`spec.${field} must be a string`);
  }
  const attributes = isObject(spec.attributes) ? spec.attributes : {};
  for (const [key, values] of Object.entries(attributes)) {
    if (key.startsWith(PREFIX)) throw bad(`spec.attributes.${key}: keys starting with ${PREFIX} are the operator's`);
    if (PROFILE_FIELDS.includes(key)) throw bad(`spec.attributes.${key}: use the typed field instead`);
    if (!isStrings(values)) throw bad(`spec.attributes.${key} must be a list of strings`);
  }
  for (const field of ['realmRoles', 'groups', 'requiredActions']) {
    if (spec[field] !== undefined && spec[field] !== null && !isStrings(spec[field])) throw bad(`spec.${field} must be a list of strings`);
  }
  for (const path of spec.groups || []) {
    if (!/^(\/[^/]+)+$/.test(path)) throw bad(`spec.groups: ${JSON.stringify(path)} is not a group path such as /staff/ops`);
  }
  const clientRoles = isObject(spec.clientRoles) ? spec.clientRoles : {};
  for (const [client, roles] of Object.entries(clientRoles)) {
    if (!isStrings(roles)) throw bad(`spec.clientRoles.${client} must be a list of role names`);
  }
  let initialPassword = null;
  if (spec.initialPassword !== undefined && spec.initialPassword !== null) {
    const p = spec.initialPassword;
    if (!isObject(p) || typeof p.secretName !== 'string' || p.secretName === '' || typeof p.key !== 'string' || p.key === '') {
      throw bad('spec.initialPassword needs both secretName and key');
    }
    initialPassword = { secretName: p.secretName, key: p.key, temporary: p.temporary === true };
  }
  const deletionPolicy = spec.deletionPolicy === 'Retain' ? 'Retain' : 'Delete';
  return {
    username: spec.username,
    email: typeof spec.email === 'string' ? spec.email : undefined,
    emailVerified: typeof spec.emailVerified === 'boolean' ? spec.emailVerified : undefined,
    firstName: typeof spec.firstName === 'string' ? spec.firstName : undefined,
    lastName: typeof spec.lastName === 'string' ? spec.lastName : undefined,
    enabled: spec.enabled !== false,
    attributes,
    requiredActions: spec.requiredActions || [],
    realmRoles: spec.realmRoles || [],
    clientRoles,
    groups: spec.groups || [],
    initialPassword,
    deletionPolicy,
    adoptExisting: spec.adoptExisting === true,
  };
}

// Like the Rust SDK: observedGeneration is written after a failed reconcile
// too, so the Ready condition must also be True for this generation.
function specUnchangedSinceLastReconcile(parent) {
  const generation = parent.metadata && parent.metadata.generation;
  const status = parent.status || {};
  const conditions = Array.isArray(status.conditions) ? status.conditions : [];
  const readyForIt = conditions.some(
    (c) => c.type === 'Ready' && c.status === 'True' && (c.observedGeneration === undefined || c.observedGeneration === generation),
  );
  return typeof generation === 'number' && generation === status.observedGeneration && readyForIt;
}

// ---- the response ---------------------------------------------------------

function event(type, reason, action, message) {
  return { eventType: type, reason, action, message };
}

// ---- Keycloak -------------------------------------------------------------

/** The user named `username`, or null. */
export function findUser(realm, username) {
  const found = list(USERS, [realm], { username, exact: true, briefRepresentation: false });
  return found.find((u) => typeof u.username === 'string' && u.username.toLowerCase() === username) || null;
}

function readUser(realm, id) {
  const user = get(USER, [realm, id]);
  if (!user) throw transient('UserNotFound', `user ${id} of realm ${realm} vanished while being reconciled`);
  return user;
}

/**
 * Makes sure Keycloak keeps the attributes the operator writes. Returns an
 * Event when it had to change the realm's user profile.
 */
function allowUnmanagedAttributes(realm) {
  const profile = get(PROFILE, [realm]);
  if (!isObject(profile)) return null; // a Keycloak without a user profile keeps every attribute
  const policy = profile.unmanagedAttributePolicy;
  if (policy === 'ENABLED' || policy === 'ADMIN_EDIT') return null;
  if (policy === 'ADMIN_VIEW') {
    throw permanent(
      'UnmanagedAttributesReadOnly',
      `the user profile of realm ${realm} lets administrators only view unmanaged attributes (ADMIN_VIEW), ` +
        'so the operator cannot record which resource owns a user; set it to ADMIN_EDIT or ENABLED',
    );
  }
  write2xx('put', PROFILE, [realm], { ...profile, unmanagedAttributePolicy: 'ADMIN_EDIT' }, `updating the user profile of realm ${realm}`);
  log.info(`allowed unmanaged attributes (ADMIN_EDIT) in the user profile of realm ${realm}`);
  return event(
    'normal',
    'UserProfileUpdated',
    'Update',
    `Set the unmanaged attribute policy of realm ${realm}'s user profile to ADMIN_EDIT, so that Keycloak keeps the operator's ownership attributes`,
  );
}

/** Fails, naming them, when required actions are unknown to the realm or disabled. */
function checkRequiredActions(realm, actions) {
  if (actions.length === 0) return;
  const known = new Map(list(REQUIRED_ACTIONS, [realm]).map((a) => [a.alias, a]));
  for (const alias of actions) {
    const action = known.get(alias);
    if (!action) throw invalidSpec('RequiredActionNotFound', `realm ${realm} has no required action ${JSON.stringify(alias)} (spec.requiredActions)`);
    if (action.enabled === false) {
      throw invalidSpec('RequiredActionDisabled', `required action ${alias} is disabled in realm ${realm} (spec.requiredActions)`);
    }
  }
}

/** The password from the Secret the spec names. Never logged, never in a message. */
function readPassword(realm, initial) {
  const value = readSecret(initial.secretName, initial.key);
  if (value === null || value === '') {
    throw transient(
      'InitialPasswordSecretNotFound',
      `spec.initialPassword names key ${JSON.stringify(initial.key)} of Secret ${JSON.stringify(initial.secretName)}, which does not exist or is empty`,
    );
  }
  return value;
}

function setPassword(realm, id, value, temporary) {
  const reply = send('put', RESET_PASSWORD, [realm, id], [], { type: 'password', value, temporary });
  if (ok(reply)) return;
  // Keycloak's message names the policy the password fails, never the password.
  throw unexpected(`setting the initial password of user ${id}`, reply);
}

// ---- comparing ------------------------------------------------------------

const sameSet = (a, b) => {
  const x = sorted(a);
  const y = sorted(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
};

/** The typed fields the spec manages, as Keycloak will hold them. */
function managedFields(spec) {
  const fields = { enabled: spec.enabled };
  if (spec.email !== undefined) fields.email = spec.email.toLowerCase();
  if (spec.firstName !== undefined) fields.firstName = spec.firstName;
  if (spec.lastName !== undefined) fields.lastName = spec.lastName;
  if (spec.emailVerified !== undefined) fields.emailVerified = spec.emailVerified;
  return fields;
}

function fieldDiffers(key, want, have) {
  if (typeof want === 'boolean') return want !== (typeof have === 'boolean' ? have : key === 'enabled');
  return (want || '') !== (typeof have === 'string' ? have : '');
}

const values = (attributes, key) => {
  const v = attributes[key];
  if (Array.isArray(v)) return v;
  return typeof v === 'string' ? [v] : [];
};

/** The attribute map to send: the user's own, the spec's, and the operator's records. */
function attributeMap(current, spec, owner, managed, removedKeys, passwordPending) {
  const out = {};
  for (const [key, value] of Object.entries(current)) {
    if (OWNER_KEYS.includes(key) || BOOKKEEPING_KEYS.includes(key) || removedKeys.includes(key)) continue;
    out[key] = value;
  }
  for (const [key, list] of Object.entries(spec.attributes)) {
    if (list.length > 0) out[key] = [...list];
    else delete out[key];
  }
  Object.assign(out, ownerAttributes(owner), bookkeepingAttributes(managed, passwordPending));
  return out;
}

/** Whether the owner and bookkeeping attributes differ between two maps. */
function recordsDiffer(want, have) {
  return [...OWNER_KEYS, ...BOOKKEEPING_KEYS].some((key) => (attribute(want, key) || '') !== (attribute(have, key) || ''));
}

/**
 * Keycloak answers 204 to an update and may still not keep all of it: the
 * user profile drops an attribute it reserves (`locale` while the realm has
 * no internationalization) or that a validator refuses. Without this check
 * such a field would be "corrected" again at every resync.
 */
function verifyKept(realm, spec, owner, after, sent) {
  const kept = isObject(after.attributes) ? after.attributes : {};
  if (recordsDiffer(sent, kept)) {
    throw permanent(
      'UnmanagedAttributesDropped',
      `Keycloak did not keep the operator's records on user ${spec.username} in realm ${realm}; ` +
        "check the unmanaged attribute policy of the realm's user profile",
    );
  }
  const fields = managedFields(spec);
  const lost = [
    ...Object.keys(fields).filter((key) => fieldDiffers(key, fields[key], after[key])),
    ...Object.entries(spec.attributes)
      .filter(([key, list]) => !sameSet(list, values(kept, key)))
      .map(([key]) => `attributes.${key}`),
  ];
  if (lost.length > 0) {
    throw invalidSpec(
      'NotKeptByKeycloak',
      `Keycloak accepted the update of user ${spec.username} but did not keep ${lost.join(', ')} ` +
        "(an attribute the realm's user profile reserves, such as locale without internationalization, or one its validators drop)",
    );
  }
}

function updateBody(user, fields, attributes) {
  const body = {};
  for (const key of CARRIED) if (user[key] !== undefined) body[key] = user[key];
  Object.assign(body, fields);
  body.attributes = attributes;
  return body;
}

// ---- converging -----------------------------------------------------------

/**
 * Converges an existing user the resource owns (or is adopting). Returns the
 * names of the managed fields and sub-objects that changed.
 */
function converge(realm, spec, owner, user) {
  const id = user.id;
  const current = isObject(user.attributes) ? user.attributes : {};
  const want = declared(spec);
  const had = recorded(current);

  // Roles and groups stay recorded until they are removed, so that a failure
  // half-way never forgets one the operator added.
  const during = { ...union(had, want), attributes: want.attributes, requiredActions: want.requiredActions };

  const fields = managedFields(spec);
  const changedFields = Object.keys(fields).filter((key) => fieldDiffers(key, fields[key], user[key]));

  const removedKeys = had.attributes.filter((key) => !want.attributes.includes(key));
  const changedAttributes = [
    ...Object.entries(spec.attributes)
      .filter(([key, list]) => !sameSet(list, values(current, key)))
      .map(([key]) => key),
    ...removedKeys.filter((key) => key in current),
  ];

  // Required actions: applied when the spec's list changes (added ones set,
  // removed ones the operator applied taken away), never re-imposed on a
  // user who has done them.
  const haveActions = Array.isArray(user.requiredActions) ? user.requiredActions : [];
  let nextActions = haveActions;
  if (!sameSet(had.requiredActions, want.requiredActions)) {
    const dropped = had.requiredActions.filter((a) => !want.requiredActions.includes(a));
    nextActions = sorted([...haveActions.filter((a) => !dropped.includes(a)), ...want.requiredActions]);
    checkRequiredActions(realm, want.requiredActions.filter((a) => !haveActions.includes(a)));
  }
  const actionsChanged = !sameSet(nextActions, haveActions);

  // The pending-password mark is never carried: reconcile sets the password
  // before it converges, and this write takes the mark away.
  const attributes = attributeMap(current, spec, owner, during, removedKeys, false);
  const body = updateBody(user, { ...fields, requiredActions: nextActions }, attributes);
  if (changedFields.length > 0 || changedAttributes.length > 0 || actionsChanged || recordsDiffer(attributes, current)) {
    write2xx('put', USER, [realm, id], body, `updating user ${spec.username}`);
    verifyKept(realm, spec, owner, readUser(realm, id), attributes);
  }

  const changed = [...changedFields, ...changedAttributes.map((k) => `attributes.${k}`)];
  if (actionsChanged) changed.push('requiredActions');
  changed.push(...convergeRoles(realm, id, want, had));
  changed.push(...convergeGroups(realm, id, want.groups, had.groups));

  // Shrink the records to what the spec lists, now that removals are done.
  const finalAttributes = attributeMap(current, spec, owner, want, removedKeys, false);
  if (recordsDiffer(finalAttributes, attributes)) {
    write2xx('put', USER, [realm, id], { ...body, attributes: finalAttributes }, `updating the records of user ${spec.username}`);
  }
  return changed;
}

/** Creates the user; null when Keycloak answers that it exists already (409). */
function create(realm, spec, owner, passwordPending) {
  const want = declared(spec);
  const body = { username: spec.username, ...managedFields(spec), requiredActions: want.requiredActions };
  body.attributes = attributeMap({}, spec, owner, want, [], passwordPending);
  const reply = send('post', USERS, [realm], [], body);
  if (reply.status === 409) return null;
  if (!ok(reply)) throw unexpected(`creating user ${spec.username}`, reply);
  const id = createdId(reply);
  const user = id ? get(USER, [realm, id]) : findUser(realm, spec.username);
  if (!user) throw transient('UserNotFound', `user ${spec.username} was created but cannot be read back`);
  if (ownership(owner, user.attributes) !== 'ours') {
    throw permanent(
      'UnmanagedAttributesDropped',
      `Keycloak created user ${spec.username} in realm ${realm} but dropped the operator's ownership attributes; ` +
        "check the unmanaged attribute policy of the realm's user profile",
    );
  }
  return user;
}

/** Converges one KeycloakUser. */
export function reconcile(request) {
  const parent = parse(request.parent, 'a resource');
  const realm = realmOf(request);
  const spec = readSpec(parent);
  const owner = ownerOf(parent);
  const username = spec.username;
  const events = [];

  let user = findUser(realm, username);
  let created = false;
  let adopted = false;
  let password = null;
  if (!user) {
    // Read the Secret first: a missing one must not leave a user without a password.
    if (spec.initialPassword) password = readPassword(realm, spec.initialPassword);
    const profileEvent = allowUnmanagedAttributes(realm);
    if (profileEvent) events.push(profileEvent);
    checkRequiredActions(realm, declared(spec).requiredActions);
    user = create(realm, spec, owner, spec.initialPassword !== null);
    if (user) {
      created = true;
      log.info(`created user ${username} in realm ${realm}`);
    } else {
      // It appeared meanwhile: judge it like any existing user.
      user = findUser(realm, username);
      if (!user) {
        throw permanent(
          'Conflict',
          `Keycloak refused to create user ${username} in realm ${realm} as a conflict (409), and no user has this username: ` +
            'another user probably has the same e-mail address',
        );
      }
    }
  }

  if (!created) {
    const who = ownership(owner, user.attributes);
    if (typeof who === 'object') {
      throw permanent('Conflict', `user ${username} of realm ${realm} is already managed by ${describeOwner(who)}; it is left untouched`);
    }
    if (who === 'unowned') {
      if (!spec.adoptExisting) {
        throw permanent(
          'Conflict',
          `user ${username} already exists in realm ${realm} and no resource manages it; set spec.adoptExisting to true to take it over`,
        );
      }
      const profileEvent = allowUnmanagedAttributes(realm);
      if (profileEvent) events.push(profileEvent);
      adopted = true;
    }
  }

  // The initial password, once, right after creation (or at the next attempt
  // if setting it failed then: the pending mark stays until it is set).
  if (attribute(user.attributes, keys.passwordPending) === 'true') {
    if (spec.initialPassword) {
      if (password === null) password = readPassword(realm, spec.initialPassword);
      setPassword(realm, user.id, password, spec.initialPassword.temporary);
      events.push(event('normal', 'InitialPasswordSet', 'Create', `Set the initial password of user ${username} from Secret ${spec.initialPassword.secretName}`));
      // A temporary password added UPDATE_PASSWORD: converge must carry it.
      if (spec.initialPassword.temporary) user = readUser(realm, user.id);
    }
  }

  const changed = converge(realm, spec, owner, user);

  let driftCorrected = [];
  if (created) {
    events.push(event('normal', 'UserCreated', 'Create', `Created user ${username} in realm ${realm}`));
  } else if (adopted) {
    events.push(event('normal', 'UserAdopted', 'Adopt', `Adopted existing user ${username} in realm ${realm}`));
  } else if (changed.length > 0) {
    if (specUnchangedSinceLastReconcile(parent)) {
      driftCorrected = changed;
      events.push(event('normal', 'DriftCorrected', 'Update', `Reverted changes made in Keycloak to ${changed.join(', ')}`));
    } else {
      events.push(event('normal', 'UserUpdated', 'Update', `Updated user ${username}: ${changed.join(', ')}`));
    }
  }
  return {
    outcome: { tag: 'ready', val: { reason: 'Reconciled', message: `User ${username} in realm ${realm} matches the spec` } },
    status: JSON.stringify({ userId: user.id }),
    children: [],
    conditions: [],
    events,
    driftCorrected,
    requeueAfterSeconds: undefined,
  };
}

/** Applies the deletion policy before the resource goes away. */
export function finalize(request) {
  const parent = parse(request.parent, 'a resource');
  const realm = realmOf(request);
  const spec = isObject(parent.spec) ? parent.spec : {};
  const username = typeof spec.username === 'string' ? spec.username.toLowerCase() : '';
  const owner = ownerOf(parent);
  if (username === '') return { events: [] };
  const user = findUser(realm, username);
  if (!user) {
    return { events: [event('normal', 'UserAlreadyGone', 'Delete', `User ${username} no longer exists in realm ${realm}`)] };
  }
  const who = ownership(owner, user.attributes);
  if (typeof who === 'object') {
    return { events: [event('warning', 'UserNotOwned', 'Delete', `User ${username} is managed by ${describeOwner(who)}; left untouched`)] };
  }
  if (who === 'unowned') {
    return { events: [event('normal', 'UserNotOwned', 'Delete', `User ${username} is not managed by this resource; left untouched`)] };
  }
  if (spec.deletionPolicy === 'Retain') {
    // Release ownership and the records, so that another resource may adopt
    // the user; everything else stays.
    const kept = {};
    for (const [key, value] of Object.entries(user.attributes || {})) {
      if (!OWNER_KEYS.includes(key) && !BOOKKEEPING_KEYS.includes(key)) kept[key] = value;
    }
    write2xx('put', USER, [realm, user.id], updateBody(user, {}, kept), `releasing user ${username}`);
    return { events: [event('normal', 'UserRetained', 'Retain', `User ${username} stays in realm ${realm} (deletionPolicy: Retain)`)] };
  }
  const reply = send('delete', USER, [realm, user.id]);
  if (reply.status === 404) {
    return { events: [event('normal', 'UserAlreadyGone', 'Delete', `User ${username} no longer exists in realm ${realm}`)] };
  }
  if (!ok(reply)) throw unexpected(`deleting user ${username}`, reply);
  log.info(`deleted user ${username} from realm ${realm}`);
  return { events: [event('normal', 'UserDeleted', 'Delete', `Deleted user ${username} from realm ${realm}`)] };
}
