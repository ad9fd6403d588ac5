// An in-memory stand-in for the parts of Keycloak 26's admin API the component
// uses, answering the host's `keycloak.send` requests (route template plus
// parameters). It mimics the behaviours seen on a real Keycloak 26.7.3 that the
// component must cope with: unmanaged attributes dropped unless the user
// profile allows them, an update's attribute map replacing the user's (profile
// fields included), e-mail kept in lower case, unknown required actions
// dropped, a temporary password adding UPDATE_PASSWORD, and a path value with
// a dot refused (the host encodes it as %2E).

import { randomUUID } from 'node:crypto';

const reply = (status, body = '', location = undefined) => ({
  status,
  location,
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const error = (status, message) => reply(status, { errorMessage: message });
const clone = (v) => JSON.parse(JSON.stringify(v));

export class FakeKeycloak {
  constructor(realm = 'shop') {
    this.realm = realm;
    this.policy = undefined; // the user profile's unmanagedAttributePolicy
    this.users = new Map();
    this.passwords = new Map();
    this.realmRoles = new Map();
    this.clients = [];
    this.groups = []; // tree: {id, name, path, subGroups}
    this.memberships = new Map(); // user id -> Set(group id)
    this.realmMappings = new Map(); // user id -> Set(role name)
    this.clientMappings = new Map(); // user id -> Map(client uuid -> Set(role name))
    this.requiredActions = ['VERIFY_EMAIL', 'UPDATE_PASSWORD', 'CONFIGURE_TOTP', 'UPDATE_PROFILE'].map((alias) => ({ alias, enabled: true }));
    this.requiredActions.push({ alias: 'TERMS_AND_CONDITIONS', enabled: false });
    this.log = [];
    this.addRealmRole(`default-roles-${realm}`);
  }

  // ---- set-up helpers ----------------------------------------------------
  addRealmRole(name) {
    const role = { id: randomUUID(), name, composite: false, clientRole: false, containerId: 'realm' };
    this.realmRoles.set(name, role);
    return role;
  }
  addClient(clientId, roles = []) {
    const client = { id: randomUUID(), clientId, roles: new Map() };
    for (const name of roles) client.roles.set(name, { id: randomUUID(), name, clientRole: true, containerId: client.id });
    this.clients.push(client);
    return client;
  }
  addGroup(path) {
    let level = this.groups;
    let prefix = '';
    let group = null;
    for (const name of path.split('/').slice(1)) {
      prefix += `/${name}`;
      group = level.find((g) => g.name === name);
      if (!group) {
        group = { id: randomUUID(), name, path: prefix, subGroups: [] };
        level.push(group);
      }
      level = group.subGroups;
    }
    return group;
  }
  addUser(rep) {
    const id = randomUUID();
    this.users.set(id, this.stored({ ...rep, id, createdTimestamp: Date.now() }, {}));
    return id;
  }
  userNamed(username) {
    return [...this.users.values()].find((u) => u.username === username) || null;
  }
  writes() {
    return this.log.filter((r) => r.method !== 'get');
  }
  allGroups(list = this.groups, out = []) {
    for (const g of list) {
      out.push(g);
      this.allGroups(g.subGroups, out);
    }
    return out;
  }

  // ---- behaviour ----------------------------------------------------------
  keepsUnmanaged() {
    return this.policy === 'ENABLED' || this.policy === 'ADMIN_EDIT';
  }
  stored(rep, previous) {
    const user = { ...previous };
    for (const key of ['id', 'username', 'email', 'firstName', 'lastName', 'enabled', 'emailVerified', 'requiredActions', 'createdTimestamp']) {
      if (rep[key] !== undefined) user[key] = clone(rep[key]);
    }
    if (rep.attributes !== undefined) {
      // The map replaces the user's, profile fields included.
      for (const key of ['email', 'firstName', 'lastName']) if (rep[key] === undefined) delete user[key];
      user.attributes = this.keepsUnmanaged() ? clone(rep.attributes) : {};
      // Reserved by the user profile; dropped while the realm has no internationalization.
      delete user.attributes.locale;
      for (const [k, v] of Object.entries(user.attributes)) {
        if (!Array.isArray(v) || v.length === 0) delete user.attributes[k];
        else user.attributes[k] = [...v].sort();
      }
      if (Object.keys(user.attributes).length === 0) delete user.attributes;
    }
    if (typeof user.username === 'string') user.username = user.username.toLowerCase();
    if (typeof user.email === 'string') user.email = user.email.toLowerCase();
    const known = new Set(this.requiredActions.filter((a) => a.enabled).map((a) => a.alias));
    user.requiredActions = (user.requiredActions || []).filter((a) => known.has(a));
    if (user.enabled === undefined) user.enabled = true;
    if (user.emailVerified === undefined) user.emailVerified = false;
    return user;
  }
  view(user) {
    const out = clone(user);
    out.access = { manage: true };
    return out;
  }
  findGroupById(id) {
    return this.allGroups().find((g) => g.id === id) || null;
  }
  brief(g) {
    return { id: g.id, name: g.name, path: g.path, subGroupCount: g.subGroups.length, subGroups: [] };
  }
  // The answer of GET /groups?search=NAME&exact=true: top-level groups on the
  // way to each match, each with only the branch leading there.
  searchTree(list, name) {
    const out = [];
    for (const g of list) {
      const below = this.searchTree(g.subGroups, name);
      if (g.name === name || below.length > 0) out.push({ ...this.brief(g), subGroups: below });
    }
    return out;
  }

  // ---- the host's send ------------------------------------------------------
  send(request) {
    const { method, route, params } = request;
    const query = Object.fromEntries(request.query);
    const body = request.body === undefined ? undefined : JSON.parse(request.body);
    this.log.push({ method, route, params, query, body });
    if (!route.startsWith('/realms/{realm}') || params[0] !== this.realm) {
      throw { payload: { tag: 'forbidden', val: `${method} ${route}: outside realm ${this.realm}` } };
    }
    if (params.some((p) => p.includes('.'))) return error(400, 'Request path not normalized');
    if (this.unavailable) throw { payload: { tag: 'unavailable', val: 'Keycloak is down' } };
    const p = params;
    switch (`${method} ${route}`) {
      case 'get /realms/{realm}/users/profile':
        return reply(200, { attributes: [{ name: 'username' }, { name: 'email' }], unmanagedAttributePolicy: this.policy });
      case 'put /realms/{realm}/users/profile':
        this.policy = body.unmanagedAttributePolicy;
        return reply(200, body);
      case 'get /realms/{realm}/authentication/required-actions':
        return reply(200, this.requiredActions);
      case 'get /realms/{realm}/users': {
        const found = [...this.users.values()].filter((u) => (query.exact === 'true' ? u.username === query.username.toLowerCase() : u.username.includes(query.username)));
        return reply(200, found.map((u) => this.view(u)));
      }
      case 'post /realms/{realm}/users': {
        if (this.userNamed(body.username.toLowerCase())) return error(409, 'User exists with same username');
        if (body.email && [...this.users.values()].some((u) => u.email === body.email.toLowerCase())) return error(409, 'User exists with same email');
        const id = randomUUID();
        this.users.set(id, this.stored({ ...body, id, createdTimestamp: Date.now() }, {}));
        return reply(201, '', `http://kc/admin/realms/${this.realm}/users/${id}`);
      }
      case 'get /realms/{realm}/users/{id}': {
        const user = this.users.get(p[1]);
        return user ? reply(200, this.view(user)) : error(404, 'User not found');
      }
      case 'put /realms/{realm}/users/{id}': {
        const user = this.users.get(p[1]);
        if (!user) return error(404, 'User not found');
        this.users.set(p[1], this.stored(body, user));
        return reply(204);
      }
      case 'delete /realms/{realm}/users/{id}':
        if (!this.users.delete(p[1])) return error(404, 'User not found');
        return reply(204);
      case 'put /realms/{realm}/users/{id}/reset-password': {
        const user = this.users.get(p[1]);
        if (!user) return error(404, 'User not found');
        if (body.value.length < 4) return error(400, 'invalidPasswordMinLengthMessage');
        this.passwords.set(p[1], { value: body.value, temporary: body.temporary });
        if (body.temporary && !user.requiredActions.includes('UPDATE_PASSWORD')) user.requiredActions.push('UPDATE_PASSWORD');
        return reply(204);
      }
      case 'get /realms/{realm}/roles/{name}': {
        const role = this.realmRoles.get(p[1]);
        return role ? reply(200, role) : error(404, 'Could not find role');
      }
      case 'get /realms/{realm}/roles':
        return reply(200, [...this.realmRoles.values()].filter((r) => r.name.includes(query.search || '')));
      case 'get /realms/{realm}/clients':
        return reply(200, this.clients.filter((c) => !query.clientId || c.clientId === query.clientId).map((c) => ({ id: c.id, clientId: c.clientId })));
      case 'get /realms/{realm}/clients/{client}/roles/{name}': {
        const client = this.clients.find((c) => c.id === p[1]);
        const role = client && client.roles.get(p[2]);
        return role ? reply(200, role) : error(404, 'Could not find role');
      }
      case 'get /realms/{realm}/clients/{client}/roles': {
        const client = this.clients.find((c) => c.id === p[1]);
        return reply(200, client ? [...client.roles.values()].filter((r) => r.name.includes(query.search || '')) : []);
      }
      case 'get /realms/{realm}/users/{id}/role-mappings': {
        const realmRoles = [...(this.realmMappings.get(p[1]) || [])].map((n) => this.realmRoles.get(n));
        const clientMappings = {};
        for (const [uuid, names] of this.clientMappings.get(p[1]) || []) {
          if (names.size === 0) continue;
          const client = this.clients.find((c) => c.id === uuid);
          clientMappings[client.clientId] = { id: uuid, client: client.clientId, mappings: [...names].map((n) => client.roles.get(n)) };
        }
        const out = { realmMappings: [this.realmRoles.get(`default-roles-${this.realm}`), ...realmRoles] };
        if (Object.keys(clientMappings).length > 0) out.clientMappings = clientMappings;
        return reply(200, out);
      }
      case 'post /realms/{realm}/users/{id}/role-mappings/realm':
      case 'delete /realms/{realm}/users/{id}/role-mappings/realm': {
        const set = this.realmMappings.get(p[1]) || new Set();
        for (const role of body) {
          if (!this.realmRoles.has(role.name) || this.realmRoles.get(role.name).id !== role.id) return error(404, 'Role not found');
          if (method === 'post') set.add(role.name);
          else set.delete(role.name);
        }
        this.realmMappings.set(p[1], set);
        return reply(204);
      }
      case 'post /realms/{realm}/users/{id}/role-mappings/clients/{client}':
      case 'delete /realms/{realm}/users/{id}/role-mappings/clients/{client}': {
        const byClient = this.clientMappings.get(p[1]) || new Map();
        const set = byClient.get(p[2]) || new Set();
        for (const role of body) {
          if (method === 'post') set.add(role.name);
          else set.delete(role.name);
        }
        byClient.set(p[2], set);
        this.clientMappings.set(p[1], byClient);
        return reply(204);
      }
      case 'get /realms/{realm}/groups':
        return reply(200, this.searchTree(this.groups, query.search));
      case 'get /realms/{realm}/groups/{group}/children': {
        const group = this.findGroupById(p[1]);
        return reply(200, group ? group.subGroups.filter((g) => g.name === query.search).map((g) => this.brief(g)) : []);
      }
      case 'get /realms/{realm}/users/{id}/groups':
        return reply(200, [...(this.memberships.get(p[1]) || [])].map((id) => this.brief(this.findGroupById(id))));
      case 'put /realms/{realm}/users/{id}/groups/{group}': {
        if (!this.findGroupById(p[2])) return error(404, 'Could not find group by id');
        const set = this.memberships.get(p[1]) || new Set();
        set.add(p[2]);
        this.memberships.set(p[1], set);
        return reply(204);
      }
      case 'delete /realms/{realm}/users/{id}/groups/{group}': {
        const set = this.memberships.get(p[1]) || new Set();
        set.delete(p[2]);
        return reply(204);
      }
      default:
        return error(404, `fake Keycloak does not know ${method} ${route}`);
    }
  }
}
