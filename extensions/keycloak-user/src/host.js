// The host's three imports, wrapped so that the rest of the component deals in
// plain values and in one kind of failure: a ReconcileError, which is the
// `reconcile-error` variant of the WIT ({tag, val: {reason, message}}) and is
// thrown as it is; the export boundary (index.js) hands it to the host.
//
// How componentize-js maps the WIT here: enums are their WIT names as strings
// ('get', 'info'), records are objects with camelCase fields, `option` is a
// value or undefined, and an imported function whose result is `err` throws an
// object whose `payload` is the error variant ({tag, val}).

import { write } from 'keycloak-operator:reconciler/log@0.1.0';
import { send as hostSend } from 'keycloak-operator:reconciler/keycloak@0.1.0';
import { read as hostRead } from 'keycloak-operator:reconciler/secrets@0.1.0';

// ---- errors ---------------------------------------------------------------

const ERROR_TAGS = ['transient', 'permanent', 'invalid-spec'];

function failure(tag, reason, message) {
  return { tag, val: { reason, message: String(message) } };
}

/** May succeed on retry (a dependency is down): retried with backoff. */
export const transient = (reason, message) => failure('transient', reason, message);
/** Needs a change outside the spec (another owner, a refused request). */
export const permanent = (reason, message) => failure('permanent', reason, message);
/** The spec is wrong. */
export const invalidSpec = (reason, message) => failure('invalid-spec', reason, message);

/** Whether a thrown value is one of ours rather than a bug. */
export function isReconcileError(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    ERROR_TAGS.includes(value.tag) &&
    value.val !== null &&
    typeof value.val === 'object' &&
    typeof value.val.reason === 'string'
  );
}

// ---- log ------------------------------------------------------------------

/** Log lines go to the host's log, tagged with component and resource. Never log secrets. */
export const log = {
  debug: (message) => write('debug', message),
  info: (message) => write('info', message),
  warn: (message) => write('warn', message),
  error: (message) => write('error', message),
};

// ---- keycloak -------------------------------------------------------------

/** Keycloak's own error text from a reply body, short. */
export function errorText(reply) {
  let text = reply.body || '';
  try {
    const parsed = JSON.parse(text);
    text = parsed.errorMessage || parsed.error_description || parsed.error || text;
  } catch {
    // not JSON: the body as it is
  }
  return String(text).slice(0, 300);
}

/** The failure for a status that `what` did not expect, classified like the Rust SDK does. */
export function unexpected(what, reply) {
  const message = `${what}: Keycloak answered ${reply.status}: ${errorText(reply)}`;
  switch (reply.status) {
    case 400:
    case 422:
      return invalidSpec('KeycloakRejected', message);
    case 401:
    case 403:
      return permanent('KeycloakForbidden', message);
    case 409:
      return transient('KeycloakConflict', message);
    default:
      return transient('KeycloakError', message);
  }
}

/**
 * Sends one request through the host. `route` is a template such as
 * /realms/{realm}/users/{id}; `params` fill its placeholders in order (the host
 * encodes each as one path segment); `query` is an object or a list of pairs.
 * Any HTTP status comes back as {status, location, body}; only the host's
 * refusals and transport failures throw.
 */
export function send(method, route, params = [], query = [], body = undefined) {
  const pairs = Array.isArray(query)
    ? query.map(([k, v]) => [String(k), String(v)])
    : Object.entries(query).map(([k, v]) => [k, String(v)]);
  const request = {
    method,
    route,
    params: params.map(String),
    query: pairs,
    body: body === undefined ? undefined : JSON.stringify(body),
  };
  try {
    const reply = hostSend(request);
    return { status: reply.status, location: reply.location, body: reply.body };
  } catch (thrown) {
    const error = thrown && thrown.payload;
    if (!error || typeof error.tag !== 'string') throw thrown;
    const message = String(error.val);
    switch (error.tag) {
      case 'unavailable':
        throw transient('KeycloakUnavailable', message);
      case 'unauthenticated':
        throw transient('KeycloakAuthenticationFailed', message);
      case 'forbidden':
        throw permanent('ScopeViolation', message);
      default:
        throw permanent('InvalidKeycloakRequest', message);
    }
  }
}

export const ok = (reply) => reply.status >= 200 && reply.status < 300;

/** The reply's body as JSON (an unexpected body is a transient failure). */
export function json(reply, what) {
  try {
    return reply.body === '' ? null : JSON.parse(reply.body);
  } catch (e) {
    throw transient('UnexpectedKeycloakResponse', `${what}: Keycloak answered with unexpected JSON: ${e.message}`);
  }
}

/** Reads one object; null on 404. */
export function get(route, params, query = []) {
  const reply = send('get', route, params, query);
  if (reply.status === 404) return null;
  if (!ok(reply)) throw unexpected(`reading ${route}`, reply);
  return json(reply, `reading ${route}`);
}

/** Reads a list. */
export function list(route, params, query = []) {
  const reply = send('get', route, params, query);
  if (!ok(reply)) throw unexpected(`listing ${route}`, reply);
  const value = json(reply, `listing ${route}`);
  return Array.isArray(value) ? value : [];
}

/** Sends a write and insists on a 2xx. */
export function write2xx(method, route, params, body, what) {
  const reply = send(method, route, params, [], body);
  if (!ok(reply)) throw unexpected(what, reply);
  return reply;
}

/** The id in a Location header: its last path segment. */
export function createdId(reply) {
  if (!reply.location) return undefined;
  const last = reply.location.replace(/\/+$/, '').split('/').pop();
  return last || undefined;
}

// ---- secrets --------------------------------------------------------------

/** One key of a Secret in the resource's namespace; null when the Secret or key is missing. */
export function readSecret(name, key) {
  try {
    return hostRead(name, key);
  } catch (thrown) {
    const error = thrown && thrown.payload;
    if (!error || typeof error.tag !== 'string') throw thrown;
    const message = String(error.val);
    switch (error.tag) {
      case 'not-found':
        return null;
      case 'forbidden':
        throw permanent('SecretAccessDenied', message);
      case 'invalid':
        throw permanent('InvalidSecret', message);
      default:
        throw transient('KubernetesUnavailable', message);
    }
  }
}
