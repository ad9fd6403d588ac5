//! The `KeycloakRealm` reconciler component.
//!
//! Creates, updates and (per deletion policy) deletes one realm. Ownership is
//! recorded in realm attributes; a realm owned by another resource is never
//! overwritten, and an existing unowned realm is adopted only on request.
//! Keycloak is read first and written only when a managed field differs, so
//! steady state costs one read per resync.

mod authentication;
mod client_scopes;
mod composites;
mod groups;
mod identity_providers;
mod records;
mod representation;
mod roles;

use composites::Resolver;
use keycloak_operator_api::{DeletionPolicy, KeycloakRealm, KeycloakRealmSpec};
use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::keycloak;
use keycloak_operator_sdk::ownership::{Owner, keeping_other_attributes};
use keycloak_operator_sdk::{
    Description, Established, Finalized, KeycloakScope, Lifecycle, ReconcileError, Reconciler, Request, Response,
};
use records::Records;
use serde_json::{Value, json};

pub use representation::desired_representation;

/// The route of one realm.
const REALM: &str = "/realms/{realm}";

/// What distinguishes one build of this reconciler from another: the shipped
/// component uses [`Options::SHIPPED`]; embedders (such as the test component
/// that plays a second version) may set their own.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Version reported by `describe`.
    pub version: &'static str,
    /// Attributes added to every realm, besides the spec's and ownership.
    pub extra_attributes: &'static [(&'static str, &'static str)],
}

impl Options {
    /// The options of the shipped component.
    pub const SHIPPED: Options = Options {
        version: env!("CARGO_PKG_VERSION"),
        extra_attributes: &[],
    };
}

/// What the component serves and needs.
pub fn describe(options: &Options) -> Description {
    Description::for_resource::<KeycloakRealm>("keycloak-operator/realm", options.version)
        .scope(KeycloakScope::Realm)
        // Not `.capability(Capability::ReadSecrets)`: only realms whose
        // identity providers take a `clientSecretRef` read Secrets, so a
        // configuration without that grant still serves every other realm,
        // and those report `SecretAccessDenied`.
        .finalizer()
        .crd(include_str!("../../../crds/keycloakrealms.keycloak.wasmop.dev.yaml"))
}

/// The lifecycle of the realm a resource owns.
fn lifecycle<'a>(name: &str, owner: &'a Owner) -> Lifecycle<'a> {
    Lifecycle::new("Realm", format!("realm {name}"), owner)
}

/// Converges one realm: its fields, its roles and their composites, its
/// groups, their role mappings and the default groups, its client scopes
/// and the default and optional client scopes, its required actions, then
/// its identity providers.
/// Flow bindings are checked before the realm is written.
pub fn reconcile(options: &Options, request: Request) -> Result<Response, ReconcileError> {
    let resource: KeycloakRealm = request.parent_as()?;
    let spec = &resource.spec;
    let name = spec.realm_name.as_str();
    let owner = Owner::of(&request);
    let base = desired_representation(spec, &owner, options.extra_attributes);

    let established = lifecycle(name, &owner).adopting(spec.adopt_existing).establish(
        || keycloak::get(REALM, &[name]),
        || create(name, &authentication::without_bindings(spec, &base)),
    )?;
    let realm = established.object();
    // An adopted realm's record is a former owner's: this resource created
    // none of those roles, so it must not delete them.
    let recorded = match &established {
        Established::Adopted(_) => Records::default(),
        _ => Records::of(realm),
    };
    let current_roles = if spec.roles.is_empty() && recorded.roles.is_empty() {
        Vec::new()
    } else {
        roles::list(name)?
    };
    let plan = roles::plan(&spec.roles, &current_roles, &recorded.roles);
    let no_defaults = Vec::new();
    let default_groups = spec.default_groups.as_ref().unwrap_or(&no_defaults);
    let mut found_groups = if spec.groups.is_empty() && recorded.groups.is_empty() && spec.default_groups.is_none() {
        groups::Found::default()
    } else {
        groups::read(name, &groups::to_expand(&spec.groups, default_groups, &recorded.groups))?
    };
    let group_plan = groups::plan(name, &spec.groups, &found_groups, &recorded.groups)?;
    let current_scopes = if client_scopes::needed(spec, &recorded.client_scopes) {
        client_scopes::list(name)?
    } else {
        Vec::new()
    };
    client_scopes::check_lists(name, spec, &current_scopes)?;
    let scope_plan = client_scopes::plan(&spec.client_scopes, &current_scopes, &recorded.client_scopes);
    let provider_secrets = identity_providers::read_secrets(&spec.identity_providers)?;
    let current_providers = if spec.identity_providers.is_empty() && recorded.identity_providers.is_empty() {
        Vec::new()
    } else {
        identity_providers::list(name)?
    };
    let provider_steps =
        identity_providers::plan(name, &spec.identity_providers, &provider_secrets, &current_providers)?;
    // Recorded before the roles and groups are created, so that a failure
    // half-way never leaves one the operator made unrecorded.
    let mut records = Records {
        roles: recorded.roles.iter().cloned().chain(plan.created_names()).collect(),
        groups: recorded
            .groups
            .iter()
            .cloned()
            .chain(group_plan.created_paths(&spec.groups))
            .collect(),
        client_scopes: recorded
            .client_scopes
            .iter()
            .cloned()
            .chain(scope_plan.created_names())
            .collect(),
        identity_providers: recorded
            .identity_providers
            .iter()
            .cloned()
            .chain(identity_providers::created_aliases(
                &spec.identity_providers,
                &current_providers,
            ))
            .collect(),
    };
    let desired = with_records(&base, &records);

    authentication::check_bindings(name, spec, &desired, realm)?;
    let (mut changed, mut held) = match &established {
        Established::Adopted(existing) => {
            let body = keeping_other_attributes(&desired, existing);
            keycloak::update(REALM, &[name], &body)?;
            (Vec::new(), body)
        }
        Established::Created(existing) | Established::Owned(existing) => converge_fields(name, &desired, existing)?,
    };
    changed.extend(roles::apply(name, &plan)?);
    let roles_now = realm_after(name, realm, &plan, &current_roles, !spec.roles.is_empty())?;
    let mut resolver = Resolver::new(name, roles_now.listed.clone());
    changed.extend(converge_composites(&mut resolver, spec, &roles_now)?);
    changed.extend(groups::apply(name, &spec.groups, &group_plan, &mut found_groups)?);
    changed.extend(groups::converge_roles(
        &mut resolver,
        name,
        &spec.groups,
        &found_groups,
    )?);
    if spec.default_groups.is_some() && groups::converge_defaults(name, default_groups, &found_groups)? {
        changed.push("defaultGroups".to_owned());
    }
    let (scopes_changed, created_scopes) = client_scopes::apply(name, &scope_plan)?;
    changed.extend(scopes_changed);
    let scope_ids = client_scopes::ids(&current_scopes, created_scopes);
    changed.extend(client_scopes::converge_lists(name, spec, &scope_ids)?);
    // After the lists, which may have held them.
    changed.extend(client_scopes::delete(name, &scope_plan)?);
    changed.extend(authentication::converge_required_actions(name, &spec.required_actions)?);
    changed.extend(identity_providers::apply(
        name,
        &spec.identity_providers,
        &provider_steps,
    )?);
    let (providers_deleted, providers_forgotten) = identity_providers::remove_unlisted(
        name,
        &spec.identity_providers,
        &current_providers,
        &recorded.identity_providers,
    )?;
    changed.extend(
        providers_deleted
            .iter()
            .map(|alias| format!("identityProviders.{alias}")),
    );

    records
        .roles
        .retain(|role| !plan.delete.iter().any(|(_, deleted)| deleted == role) && !plan.forget.contains(role));
    records.groups.retain(|path| !group_plan.forget.contains(path));
    records
        .identity_providers
        .retain(|alias| !providers_deleted.contains(alias) && !providers_forgotten.contains(alias));
    records.client_scopes.retain(|scope| {
        !scope_plan.delete.iter().any(|(_, deleted)| deleted == scope) && !scope_plan.forget.contains(scope)
    });
    if records != Records::of(&held) {
        held = keeping_other_attributes(&with_records(&json!({ "realm": name }), &records), &held);
        keycloak::update(REALM, &[name], &held)?;
    }

    let response = match &established {
        Established::Owned(_) => report(name, changed, &request),
        _ => lifecycle(name, &owner).announce(&established, ready(name)),
    };
    with_status(response, realm, &request)
}

/// `desired` with the operator's records among its attributes.
fn with_records(desired: &Value, records: &Records) -> Value {
    let mut body = desired.clone();
    for (key, value) in records.attributes() {
        body["attributes"][key] = json!(value);
    }
    body
}

/// Writes the realm's managed fields that differ, if any: steady state only
/// reads. Returns the drifted fields (the operator's records left out) and
/// the realm as Keycloak now holds it, as far as attributes go.
fn converge_fields(name: &str, desired: &Value, existing: &Value) -> Result<(Vec<String>, Value), ReconcileError> {
    let drifted = keycloak_operator_sdk::diff::drifted_fields(desired, existing);
    if drifted.is_empty() {
        return Ok((Vec::new(), existing.clone()));
    }
    let body = keeping_other_attributes(desired, existing);
    keycloak::update(REALM, &[name], &body)?;
    let changed = drifted
        .into_iter()
        .filter(|path| !records::is_bookkeeping(path))
        .collect();
    Ok((changed, body))
}

/// The realm's roles after the plan: listed again only when roles were
/// created and a composite may need their ids; `None` when they were never
/// listed (the spec declares none).
fn realm_after(
    name: &str,
    realm: &Value,
    plan: &roles::Plan,
    before: &[Value],
    listed: bool,
) -> Result<Roles, ReconcileError> {
    let default_role = realm["defaultRole"]["id"].as_str().map(str::to_owned);
    let listed = if !plan.create.is_empty() {
        Some(roles::list(name)?)
    } else if listed {
        Some(before.to_vec())
    } else {
        None
    };
    Ok(Roles { listed, default_role })
}

/// The roles of a realm, when listed, and the id of its default role.
struct Roles {
    listed: Option<Vec<Value>>,
    default_role: Option<String>,
}

/// Makes the composites of declared roles, and the default roles, exactly
/// what the spec declares, where it declares them.
fn converge_composites(
    resolver: &mut Resolver<'_>,
    spec: &KeycloakRealmSpec,
    roles: &Roles,
) -> Result<Vec<String>, ReconcileError> {
    let mut changed = Vec::new();
    for (index, role) in spec.roles.iter().enumerate() {
        let Some(declared) = &role.composites else { continue };
        let Some(have) = roles.listed.iter().flatten().find(|r| r["name"] == role.name.as_str()) else {
            continue;
        };
        let id = have["id"].as_str().unwrap_or_default();
        let known_empty = have["composite"] == false;
        if composites::converge(
            resolver,
            id,
            declared,
            known_empty,
            &format!("spec.roles[{index}].composites"),
        )? {
            changed.push(format!("roles.{}.composites", role.name));
        }
    }
    if let (Some(declared), Some(id)) = (&spec.default_roles, &roles.default_role)
        && composites::converge(resolver, id, declared, false, "spec.defaultRoles")?
    {
        changed.push("defaultRoles".to_owned());
    }
    Ok(changed)
}

/// The outcome of converging a realm the resource already owned.
fn report(name: &str, changed: Vec<String>, request: &Request) -> Response {
    if changed.is_empty() {
        return ready(name);
    }
    if request.spec_unchanged_since_last_reconcile() {
        let fields = changed.join(", ");
        ready(name)
            .event(
                "DriftCorrected",
                "Update",
                format!("Reverted changes made in Keycloak to {fields}"),
            )
            .drift_corrected(changed)
    } else {
        ready(name).event("RealmUpdated", "Update", format!("Updated realm {name}"))
    }
}

/// Creates the realm and reads it back; `None` when Keycloak answers that
/// it exists already (409).
fn create(name: &str, desired: &Value) -> Result<Option<Value>, ReconcileError> {
    let reply = keycloak::send(keycloak::Method::Post, "/realms", &[], &[], Some(desired))?;
    match reply.status {
        409 => Ok(None),
        s if (200..300).contains(&s) => keycloak::get(REALM, &[name])?.map(Some).ok_or_else(|| {
            transient(
                "RealmNotFound",
                format!("realm {name} was created but cannot be read back"),
            )
        }),
        _ => Err(keycloak::unexpected(&format!("creating realm {name}"), &reply)),
    }
}

fn with_status(response: Response, realm: &Value, request: &Request) -> Result<Response, ReconcileError> {
    response.status(json!({
        "realmId": realm.get("id").and_then(Value::as_str),
        "keycloak": request.target.as_ref().map(|t| t.keycloak.as_str()),
    }))
}

fn ready(name: &str) -> Response {
    Response::ready("Reconciled", format!("Realm {name} matches the spec"))
}

/// Applies the deletion policy before the resource goes away.
pub fn finalize(request: Request) -> Result<Finalized, ReconcileError> {
    let resource: KeycloakRealm = request.parent_as()?;
    let name = resource.spec.realm_name.as_str();
    let owner = Owner::of(&request);
    lifecycle(name, &owner).end(
        keycloak::get(REALM, &[name])?,
        resource.spec.deletion_policy == DeletionPolicy::Retain,
        |_| keycloak::delete(REALM, &[name]).map(|_| ()),
        |current| {
            // Released, so that a new resource can adopt the realm.
            let release = json!({ "realm": name, "attributes": Owner::released_attributes() });
            keycloak::update(REALM, &[name], &keeping_other_attributes(&release, current))
        },
    )
}

/// The shipped component.
pub struct RealmReconciler;

impl Reconciler for RealmReconciler {
    fn describe() -> Description {
        describe(&Options::SHIPPED)
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        reconcile(&Options::SHIPPED, request)
    }

    fn finalize(request: Request) -> Result<Finalized, ReconcileError> {
        finalize(request)
    }
}

#[cfg(feature = "export")]
keycloak_operator_sdk::export_reconciler!(RealmReconciler);
