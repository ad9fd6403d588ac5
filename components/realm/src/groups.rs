//! Groups, converged by path.
//!
//! Keycloak lists a realm's top-level groups in one request, with their
//! attributes and role mappings, and each group's subgroups in another. The
//! operator lists the top level, then the subgroups of the groups the spec
//! or its record reaches below: a resync costs one read plus one per
//! declared parent, however many groups the realm holds. Groups are
//! addressed by id, which any name can carry.

use std::collections::{BTreeMap, BTreeSet};

use keycloak_operator_api::RealmGroup;
use keycloak_operator_api::realm::parent_path;
use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::keycloak::{self, Method};
use keycloak_operator_sdk::{ReconcileError, log};
use serde_json::{Value, json};

use super::composites::{Resolver, role_not_found};

const GROUPS: &str = "/realms/{realm}/groups";
const GROUP: &str = "/realms/{realm}/groups/{group}";
const CHILDREN: &str = "/realms/{realm}/groups/{group}/children";
const REALM_MAPPINGS: &str = "/realms/{realm}/groups/{group}/role-mappings/realm";
const CLIENT_MAPPINGS: &str = "/realms/{realm}/groups/{group}/role-mappings/clients/{client}";
const DEFAULT_GROUPS: &str = "/realms/{realm}/default-groups";
const DEFAULT_GROUP: &str = "/realms/{realm}/default-groups/{group}";
/// Groups asked for per request. Keycloak answers a subgroup listing with
/// ten unless told otherwise.
const PAGE: usize = 500;

fn group_not_found(message: String) -> ReconcileError {
    transient("GroupNotFound", message)
}

/// Every item of a paged Keycloak listing, in full representation.
fn list_all(route: &str, params: &[&str]) -> Result<Vec<Value>, ReconcileError> {
    let mut all = Vec::new();
    loop {
        let first = all.len().to_string();
        let max = PAGE.to_string();
        let page = keycloak::list(
            route,
            params,
            &[("briefRepresentation", "false"), ("first", &first), ("max", &max)],
        )?;
        let done = page.len() < PAGE;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

fn id_of(group: &Value) -> &str {
    group["id"].as_str().unwrap_or_default()
}

fn depth(path: &str) -> usize {
    path.matches('/').count()
}

/// The groups read from Keycloak, by path.
#[derive(Debug, Default)]
pub struct Found {
    by_path: BTreeMap<String, Value>,
    /// Groups whose subgroups were listed (or are known to be none).
    expanded: BTreeSet<String>,
}

impl Found {
    fn insert(&mut self, parent: Option<&str>, group: Value) {
        let name = group["name"].as_str().unwrap_or_default();
        // Keycloak's own path escapes a `/` in a name, so a hand-made
        // `a/b` never passes for the subgroup `b` of `a`.
        let path = group["path"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}/{name}", parent.unwrap_or_default()));
        self.by_path.insert(path, group);
    }

    /// The group at `path`, if it exists.
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.by_path.get(path)
    }

    /// The subgroups of `path` that were read; `None` when they were not
    /// listed.
    fn children(&self, path: &str) -> Option<Vec<&str>> {
        if !self.expanded.contains(path) {
            return None;
        }
        Some(
            self.by_path
                .keys()
                .filter(|p| parent_path(p) == Some(path))
                .map(String::as_str)
                .collect(),
        )
    }
}

/// The groups whose subgroups must be read: the parents of every declared,
/// default and recorded group (to find them), and the recorded groups the
/// spec no longer lists (to see whether a group made by hand is below one
/// about to be deleted).
pub fn to_expand<'a>(
    declared: &'a [RealmGroup],
    defaults: &'a [String],
    recorded: &'a BTreeSet<String>,
) -> BTreeSet<&'a str> {
    let mut paths = BTreeSet::new();
    let named = declared
        .iter()
        .map(|g| g.path.as_str())
        .chain(defaults.iter().map(String::as_str))
        .chain(recorded.iter().map(String::as_str));
    for path in named {
        let mut at = parent_path(path);
        while let Some(parent) = at {
            paths.insert(parent);
            at = parent_path(parent);
        }
    }
    let listed: BTreeSet<&str> = declared.iter().map(|g| g.path.as_str()).collect();
    paths.extend(recorded.iter().map(String::as_str).filter(|p| !listed.contains(p)));
    paths
}

/// Reads the top-level groups, then the subgroups of `expand`, parents first.
pub fn read(realm: &str, expand: &BTreeSet<&str>) -> Result<Found, ReconcileError> {
    let mut found = Found::default();
    for group in list_all(GROUPS, &[realm])? {
        found.insert(None, group);
    }
    let mut ordered: Vec<&str> = expand.iter().copied().collect();
    ordered.sort_by_key(|p| depth(p));
    for parent in ordered {
        let Some(group) = found.get(parent) else { continue };
        if group["subGroupCount"].as_u64() != Some(0) {
            let id = id_of(group).to_owned();
            for child in list_all(CHILDREN, &[realm, &id])? {
                found.insert(Some(parent), child);
            }
        }
        found.expanded.insert(parent.to_owned());
    }
    Ok(found)
}

/// What converging the groups takes.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Indexes of the declared groups to create, parents first.
    pub create: Vec<usize>,
    /// Groups to update: (id, body).
    pub update: Vec<(String, Value)>,
    /// Groups the operator created that the spec no longer lists, and that
    /// hold no group made by hand: (id, path), topmost only (Keycloak
    /// deletes a group's subgroups with it).
    pub delete: Vec<(String, String)>,
    /// Every recorded path that goes: deleted, below a deleted group, or
    /// gone already.
    pub forget: Vec<String>,
    /// Groups the operator created that the spec no longer lists but that
    /// stay, and stay recorded, because a group made by hand is below them.
    pub kept: Vec<String>,
}

impl Plan {
    /// Paths of the groups about to be created.
    pub fn created_paths<'a>(&'a self, declared: &'a [RealmGroup]) -> impl Iterator<Item = String> + 'a {
        self.create.iter().map(|&i| declared[i].path.clone())
    }
}

fn attributes_of(group: &Value) -> BTreeMap<String, Vec<String>> {
    serde_json::from_value(group["attributes"].clone()).unwrap_or_default()
}

/// The update of `have` that `group` asks for, if its attributes differ.
/// Keycloak replaces a group's attributes with those sent: the unmanaged
/// ones are sent back.
fn update(group: &RealmGroup, have: &Value) -> Option<Value> {
    let mut attributes = attributes_of(have);
    if group
        .attributes
        .iter()
        .all(|(key, values)| attributes.get(key) == Some(values))
    {
        return None;
    }
    attributes.extend(group.attributes.clone());
    Some(json!({ "id": have["id"], "name": have["name"], "attributes": attributes }))
}

/// Whether the recorded group at `path` may go: it exists, the spec does
/// not list it, and every group below it may go too.
fn deletable(path: &str, found: &Found, recorded: &BTreeSet<String>, listed: &BTreeSet<&str>) -> bool {
    if !recorded.contains(path) || listed.contains(path) || found.get(path).is_none() {
        return false;
    }
    match found.children(path) {
        Some(children) => children.iter().all(|c| deletable(c, found, recorded, listed)),
        None => false,
    }
}

/// Plans the groups' convergence from what Keycloak holds and what the
/// operator recorded as its own. A declared group whose parent is neither
/// declared nor in Keycloak is an error naming its field.
pub fn plan(
    realm: &str,
    declared: &[RealmGroup],
    found: &Found,
    recorded: &BTreeSet<String>,
) -> Result<Plan, ReconcileError> {
    let listed: BTreeSet<&str> = declared.iter().map(|g| g.path.as_str()).collect();
    let mut plan = Plan::default();
    let mut order: Vec<usize> = (0..declared.len()).collect();
    order.sort_by_key(|&i| depth(&declared[i].path));
    for index in order {
        let group = &declared[index];
        match found.get(&group.path) {
            Some(have) => {
                if let Some(body) = update(group, have) {
                    plan.update.push((id_of(have).to_owned(), body));
                }
            }
            None => {
                if let Some(parent) = group.parent_path()
                    && !listed.contains(parent)
                    && found.get(parent).is_none()
                {
                    return Err(group_not_found(format!(
                        "spec.groups[{index}].path: the parent group {parent} is neither declared nor in realm {realm}"
                    )));
                }
                plan.create.push(index);
            }
        }
    }
    for path in recorded.iter().filter(|p| !listed.contains(p.as_str())) {
        if found.get(path).is_none() {
            plan.forget.push(path.clone());
        } else if deletable(path, found, recorded, &listed) {
            plan.forget.push(path.clone());
            let parent_goes = parent_path(path).is_some_and(|p| deletable(p, found, recorded, &listed));
            if !parent_goes {
                plan.delete.push((id_of(&found.by_path[path]).to_owned(), path.clone()));
            }
        } else {
            plan.kept.push(path.clone());
        }
    }
    Ok(plan)
}

/// Carries out a plan, adding the groups it creates to `found`; returns the
/// changed groups (paths only, for Events).
pub fn apply(
    realm: &str,
    declared: &[RealmGroup],
    plan: &Plan,
    found: &mut Found,
) -> Result<Vec<String>, ReconcileError> {
    let mut changed = Vec::new();
    for path in &plan.kept {
        log::info(&format!(
            "group {path} is no longer declared but holds groups made by hand: it stays"
        ));
    }
    for (id, path) in &plan.delete {
        keycloak::delete(GROUP, &[realm, id])?;
        changed.push(format!("groups.{path}"));
    }
    for &index in &plan.create {
        let group = &declared[index];
        let mut body = json!({ "name": group.name() });
        if !group.attributes.is_empty() {
            body["attributes"] = json!(group.attributes);
        }
        let reply = match group.parent_path() {
            None => keycloak::create(GROUPS, &[realm], &body)?,
            Some(parent) => {
                let parent_id = found.get(parent).map(id_of).unwrap_or_default().to_owned();
                keycloak::create(CHILDREN, &[realm, &parent_id], &body)?
            }
        };
        let id = reply.created_id().map(str::to_owned).ok_or_else(|| {
            transient(
                "GroupNotFound",
                format!("group {} was created but Keycloak did not say its id", group.path),
            )
        })?;
        body["id"] = json!(id);
        body["path"] = json!(group.path);
        body["subGroupCount"] = json!(0);
        found.insert(group.parent_path(), body);
        found.expanded.insert(group.path.clone());
        changed.push(format!("groups.{}", group.path));
    }
    for (id, body) in &plan.update {
        keycloak::update(GROUP, &[realm, id], body)?;
        let path = found
            .by_path
            .iter()
            .find(|(_, g)| id_of(g) == id)
            .map(|(p, _)| p.clone())
            .unwrap_or_default();
        changed.push(format!("groups.{path}"));
    }
    Ok(changed)
}

/// Sends the roles to add to, or remove from, a group's mappings at `route`.
fn send_mappings(
    method: Method,
    route: &str,
    params: &[&str],
    roles: Vec<Value>,
    what: &str,
) -> Result<(), ReconcileError> {
    if roles.is_empty() {
        return Ok(());
    }
    let reply = keycloak::send(method, route, params, &[], Some(&json!(roles)))?;
    if reply.is_success() {
        Ok(())
    } else {
        Err(keycloak::unexpected(what, &reply))
    }
}

/// Role names held by a group: realm roles, and client roles by `clientId`.
fn mapped(group: &Value) -> (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    let realm = serde_json::from_value(group["realmRoles"].clone()).unwrap_or_default();
    let clients = serde_json::from_value(group["clientRoles"].clone()).unwrap_or_default();
    (realm, clients)
}

/// Makes the role mappings of the declared groups that set `roles` exactly
/// those; returns the groups whose mappings changed.
pub fn converge_roles(
    resolver: &mut Resolver<'_>,
    realm: &str,
    declared: &[RealmGroup],
    found: &Found,
) -> Result<Vec<String>, ReconcileError> {
    let mut changed = Vec::new();
    for (index, group) in declared.iter().enumerate() {
        let Some(wanted) = &group.roles else { continue };
        let Some(have) = found.get(&group.path) else { continue };
        let id = id_of(have);
        let field = format!("spec.groups[{index}].roles");
        let (have_realm, have_clients) = mapped(have);
        let want_realm: BTreeSet<String> = wanted.realm_roles.iter().cloned().collect();
        let mut touched = false;

        let mut add = Vec::new();
        for name in want_realm.difference(&have_realm) {
            let role = resolver
                .realm_role(name)?
                .ok_or_else(|| role_not_found(format!("{field}: the realm has no role {name:?} (realm {realm})")))?;
            add.push(role);
        }
        let mut remove = Vec::new();
        for name in have_realm.difference(&want_realm) {
            if let Some(role) = resolver.realm_role(name)? {
                remove.push(role);
            }
        }
        touched |= !add.is_empty() || !remove.is_empty();
        let what = format!("changing the realm roles of group {}", group.path);
        send_mappings(Method::Delete, REALM_MAPPINGS, &[realm, id], remove, &what)?;
        send_mappings(Method::Post, REALM_MAPPINGS, &[realm, id], add, &what)?;

        let clients: BTreeSet<&String> = wanted.client_roles.keys().chain(have_clients.keys()).collect();
        for client_id in clients {
            let want: BTreeSet<String> = wanted
                .client_roles
                .get(client_id)
                .map(|names| names.iter().cloned().collect())
                .unwrap_or_default();
            let holds = have_clients.get(client_id).cloned().unwrap_or_default();
            if want == holds {
                continue;
            }
            let uuid = resolver.client_uuid(client_id)?.ok_or_else(|| {
                role_not_found(format!(
                    "{field}.clientRoles: realm {realm} has no client {client_id:?}"
                ))
            })?;
            let mut add = Vec::new();
            for name in want.difference(&holds) {
                let role = resolver.client_role(&uuid, name)?.ok_or_else(|| {
                    role_not_found(format!(
                        "{field}.clientRoles: client {client_id:?} has no role {name:?} (realm {realm})"
                    ))
                })?;
                add.push(role);
            }
            let mut remove = Vec::new();
            for name in holds.difference(&want) {
                if let Some(role) = resolver.client_role(&uuid, name)? {
                    remove.push(role);
                }
            }
            touched |= !add.is_empty() || !remove.is_empty();
            let what = format!("changing the roles of client {client_id} in group {}", group.path);
            send_mappings(Method::Delete, CLIENT_MAPPINGS, &[realm, id, &uuid], remove, &what)?;
            send_mappings(Method::Post, CLIENT_MAPPINGS, &[realm, id, &uuid], add, &what)?;
        }
        if touched {
            changed.push(format!("groups.{}.roles", group.path));
        }
    }
    Ok(changed)
}

/// Makes the realm's default groups exactly `declared`; returns whether
/// anything changed.
pub fn converge_defaults(realm: &str, declared: &[String], found: &Found) -> Result<bool, ReconcileError> {
    let mut wanted = BTreeMap::new();
    for (index, path) in declared.iter().enumerate() {
        let group = found.get(path).ok_or_else(|| {
            group_not_found(format!(
                "spec.defaultGroups[{index}]: realm {realm} has no group {path}"
            ))
        })?;
        wanted.insert(id_of(group).to_owned(), path);
    }
    let current = keycloak::list(DEFAULT_GROUPS, &[realm], &[])?;
    let have: BTreeSet<&str> = current.iter().map(id_of).collect();
    let mut changed = false;
    for group in current.iter().filter(|g| !wanted.contains_key(id_of(g))) {
        keycloak::delete(DEFAULT_GROUP, &[realm, id_of(group)])?;
        changed = true;
    }
    for id in wanted.keys().filter(|id| !have.contains(id.as_str())) {
        let reply = keycloak::send(Method::Put, DEFAULT_GROUP, &[realm, id], &[], None)?;
        if !reply.is_success() {
            return Err(keycloak::unexpected(
                &format!("adding default group {}", wanted[id]),
                &reply,
            ));
        }
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(path: &str, attributes: &[(&str, &str)]) -> RealmGroup {
        RealmGroup {
            path: path.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect(),
            roles: None,
        }
    }

    fn found(groups: &[(&str, &str, u64)], expanded: &[&str]) -> Found {
        let mut found = Found::default();
        for (path, id, children) in groups {
            let name = path.rsplit('/').next().unwrap_or_default();
            found.insert(
                parent_path(path),
                json!({"id": id, "name": name, "path": path, "subGroupCount": children}),
            );
        }
        found.expanded = expanded.iter().map(|p| (*p).to_owned()).collect();
        found
    }

    #[test]
    fn parents_are_created_first_and_a_missing_undeclared_parent_is_named() {
        let declared = [group("/eng/backend", &[]), group("/eng", &[])];
        let ordered = plan("r", &declared, &Found::default(), &BTreeSet::new()).expect("plan");
        assert_eq!(ordered.create, vec![1, 0]);

        let orphan = [group("/ops/oncall", &[])];
        let error = plan_error(&orphan, &Found::default());
        assert!(
            error.contains("spec.groups[0].path") && error.contains("/ops"),
            "{error}"
        );

        let by_hand = found(&[("/ops", "1", 0)], &["/ops"]);
        let plan = plan("r", &orphan, &by_hand, &BTreeSet::new()).expect("a parent made by hand will do");
        assert_eq!(plan.create, vec![0]);
    }

    fn plan_error(declared: &[RealmGroup], found: &Found) -> String {
        match plan("r", declared, found, &BTreeSet::new()) {
            Err(ReconcileError::Transient(detail)) => format!("{}: {}", detail.reason, detail.message),
            other => panic!("expected GroupNotFound, got {other:?}"),
        }
    }

    #[test]
    fn only_differing_attributes_update_and_unmanaged_ones_are_kept() {
        let mut have = found(&[("/eng", "1", 0)], &[]);
        have.by_path.get_mut("/eng").expect("eng")["attributes"] = json!({"team": ["a"], "x": ["y"]});
        let same = plan("r", &[group("/eng", &[("team", "a")])], &have, &BTreeSet::new()).expect("plan");
        assert!(same.update.is_empty() && same.create.is_empty(), "{same:?}");
        let changed = plan("r", &[group("/eng", &[("team", "b")])], &have, &BTreeSet::new()).expect("plan");
        assert_eq!(changed.update[0].1["attributes"], json!({"team": ["b"], "x": ["y"]}));
    }

    #[test]
    fn an_unlisted_recorded_group_goes_unless_a_group_made_by_hand_is_below_it() {
        let recorded: BTreeSet<String> = ["/old", "/old/sub", "/kept", "/gone"].map(str::to_owned).into();
        let realm = found(
            &[
                ("/old", "1", 1),
                ("/old/sub", "2", 0),
                ("/kept", "3", 1),
                ("/kept/manual", "4", 0),
            ],
            &["/old", "/old/sub", "/kept"],
        );
        let plan = plan("r", &[], &realm, &recorded).expect("plan");
        assert_eq!(
            plan.delete,
            vec![("1".to_owned(), "/old".to_owned())],
            "only the topmost is sent"
        );
        let forgotten: BTreeSet<&str> = plan.forget.iter().map(String::as_str).collect();
        assert_eq!(forgotten, ["/gone", "/old", "/old/sub"].into());
        assert_eq!(plan.kept, vec!["/kept".to_owned()]);
    }

    #[test]
    fn the_groups_expanded_are_the_declared_ones_parents_and_the_recorded_unlisted_ones() {
        let declared = [group("/a/b/c", &[]), group("/x", &[])];
        let defaults = ["/d/e".to_owned()];
        let recorded: BTreeSet<String> = ["/x", "/old", "/y/gone"].map(str::to_owned).into();
        let expand = to_expand(&declared, &defaults, &recorded);
        assert_eq!(expand, ["/a", "/a/b", "/d", "/old", "/y", "/y/gone"].into());
    }
}
