// Group memberships of a user, by full group path (/staff/ops). Joined when
// the spec lists a group; left only when the operator recorded the group as
// one it manages and the spec no longer lists it.

import { invalidSpec, list, send, ok, unexpected } from './host.js';

const USER_GROUPS = '/realms/{realm}/users/{id}/groups';
const USER_GROUP = '/realms/{realm}/users/{id}/groups/{group}';
const GROUPS = '/realms/{realm}/groups';
const CHILDREN = '/realms/{realm}/groups/{group}/children';

const PAGE = 1000;

/** A group path's segments: "/staff/ops" -> ["staff", "ops"]. */
export const segments = (path) => path.split('/').slice(1);

function walk(groups, path) {
  for (const group of groups || []) {
    if (group.path === path) return group;
    const below = walk(group.subGroups, path);
    if (below) return below;
  }
  return null;
}

/**
 * The group at `path`, or null. Keycloak 26 answers a search by exact name
 * with the top-level groups on the way to every match, each carrying only the
 * branch that leads to it in `subGroups`, and every group its `path`: one
 * request finds a group at any depth. Should the answer be cut short (paging
 * of large trees), the path is walked from the top, one level per request.
 */
export function findGroup(realm, path) {
  const names = segments(path);
  const last = names[names.length - 1];
  const hit = walk(list(GROUPS, [realm], { search: last, exact: true, first: 0, max: PAGE }), path);
  if (hit) return hit;
  let level = list(GROUPS, [realm], { search: names[0], exact: true, first: 0, max: PAGE });
  let group = level.find((g) => g.name === names[0] && g.path === `/${names[0]}`) || null;
  for (let i = 1; group && i < names.length; i += 1) {
    level = list(CHILDREN, [realm, group.id], { search: names[i], exact: true, first: 0, max: PAGE });
    group = level.find((g) => g.name === names[i]) || null;
  }
  return group;
}

/**
 * Converges the memberships of user `id`: `want` and `recorded` are lists of
 * paths. Returns what changed ("groups./staff/ops"). Reads nothing when
 * neither lists a group.
 */
export function convergeGroups(realm, id, want, recorded) {
  if (want.length === 0 && recorded.length === 0) return [];
  const memberOf = new Map(list(USER_GROUPS, [realm, id], { first: 0, max: PAGE }).map((g) => [g.path, g]));
  const join = want.filter((path) => !memberOf.has(path));
  const leave = recorded.filter((path) => !want.includes(path) && memberOf.has(path));
  // Resolve every group first: a missing one fails before any change.
  const joining = join.map((path) => {
    const group = findGroup(realm, path);
    if (!group) throw invalidSpec('GroupNotFound', `realm ${realm} has no group ${JSON.stringify(path)} (spec.groups)`);
    return { path, id: group.id };
  });
  const changed = [];
  for (const group of joining) {
    const reply = send('put', USER_GROUP, [realm, id, group.id]);
    if (!ok(reply)) throw unexpected(`adding the user to group ${group.path}`, reply);
    changed.push(`groups.${group.path}`);
  }
  for (const path of leave) {
    const reply = send('delete', USER_GROUP, [realm, id, memberOf.get(path).id]);
    if (!ok(reply) && reply.status !== 404) throw unexpected(`removing the user from group ${path}`, reply);
    changed.push(`groups.${path}`);
  }
  return changed;
}
