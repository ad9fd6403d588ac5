//! Drift caught in seconds. Keycloak records every admin change as an admin
//! event; for each realm that resources are reconciled in, the host turns
//! admin events on (with a retention), reads the realm's new events every few
//! seconds in one request, and requeues only the resources whose Keycloak
//! objects changed. The periodic resync stays, at a longer period, as the
//! safety net for what events do not show.
//!
//! It knows no kind: a resource's objects are the realm paths its last
//! reconcile read or wrote through its gateway (`clients/<id>` for a client
//! found by a search, the realm itself for a realm). An event on a path, or
//! below it, concerns the resources that recorded that path. The operator's
//! own writes are events too; they are told apart by the paths it wrote
//! just before, and by its admin user when that is known.

mod admin_events;
mod index;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use self::admin_events::{AdminEvent, Batch, Cursor, enable_admin_events, own_user, read_new_events};
use self::index::PathIndex;
use super::connection::Connection;
use super::route::Scope;
use crate::capability::Nudge;
use crate::metrics::Metrics;
use crate::runtime::model::{KeycloakError, KeycloakResponse, Method};

/// How drift is watched.
#[derive(Debug, Clone, Copy)]
pub struct DriftSettings {
    /// How often each realm's admin events are read; zero turns the watch off.
    pub poll_interval: Duration,
    /// How long Keycloak keeps admin events in realms where the host turns
    /// them on.
    pub retention: Duration,
}

/// Paths one resource may record: a reconcile that reads more than this
/// is watched through its first ones and the resync.
const MAX_PATHS: usize = 1024;
/// Items of one list read recorded by id.
const MAX_LISTED: usize = 500;
/// An event on a path the operator wrote this close in time is its own:
/// the time Keycloak took to answer, and the difference of the clocks.
const OWN_WRITE_WINDOW_MS: i64 = 3_000;
/// How long the operator's writes are remembered.
const WRITE_MEMORY_MS: i64 = 60_000;

/// The realm of a connection: `(connection key, realm name)`.
type RealmKey = (String, String);

/// One realm's watch: the connection it is polled through, its index, and
/// the operator's recent writes in it.
struct RealmWatch {
    connection: Arc<Connection>,
    index: PathIndex,
    /// Path → when the operator last wrote it (ms since the epoch, host clock).
    writes: HashMap<String, i64>,
    /// Tells this watch's poller from one of a watch that was dropped and
    /// made again meanwhile.
    generation: u64,
}

impl RealmWatch {
    fn idle(&self) -> bool {
        self.index.is_empty() && self.writes.is_empty()
    }

    /// Whether the operator made the change an event records: it wrote that
    /// path at about that time, as the event's admin user when that user is
    /// known. Keycloak does not say which session made a change, and the
    /// operator may share its admin account with people, so the account alone
    /// cannot tell. Each write accounts for one event.
    fn by_operator(&mut self, event: &AdminEvent, own_user: Option<&str>) -> bool {
        made_by_operator(&mut self.writes, event, own_user)
    }

    fn forget_old_writes(&mut self, now: i64) {
        self.writes.retain(|_, at| now - *at <= WRITE_MEMORY_MS);
    }
}

fn made_by_operator(writes: &mut HashMap<String, i64>, event: &AdminEvent, own_user: Option<&str>) -> bool {
    if let (Some(own), Some(user)) = (own_user, event.user())
        && own != user
    {
        return false;
    }
    let path = event.resource_path.trim_matches('/');
    let matched = writes
        .get(path)
        .is_some_and(|at| (event.time - at).abs() <= OWN_WRITE_WINDOW_MS);
    if matched {
        writes.remove(path);
    }
    matched
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The watch of every realm in use.
pub struct DriftWatch {
    settings: DriftSettings,
    realms: Mutex<HashMap<RealmKey, RealmWatch>>,
    generations: AtomicU64,
    nudges: broadcast::Sender<Nudge>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
}

impl DriftWatch {
    /// A watch whose pollers stop with `cancel`.
    pub fn new(settings: DriftSettings, metrics: Arc<Metrics>, cancel: CancellationToken) -> Arc<Self> {
        Arc::new(DriftWatch {
            settings,
            realms: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
            nudges: broadcast::channel(4096).0,
            metrics,
            cancel,
        })
    }

    fn realms(&self) -> std::sync::MutexGuard<'_, HashMap<RealmKey, RealmWatch>> {
        self.realms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The resources to look at again, as events find them.
    pub fn subscribe(&self) -> broadcast::Receiver<Nudge> {
        self.nudges.subscribe()
    }

    /// A recorder for one reconcile of `who` on `connection`, when its scope
    /// is a realm and the watch is on.
    pub fn recorder(self: &Arc<Self>, connection: &Arc<Connection>, scope: &Scope, who: Nudge) -> Option<PathRecorder> {
        let realm = match scope {
            Scope::OwnedRealm(realm) | Scope::InRealm(realm) => realm.clone(),
            Scope::Instance => return None,
        };
        (!self.settings.poll_interval.is_zero()).then(|| PathRecorder {
            watch: self.clone(),
            connection: connection.clone(),
            realm,
            who,
            paths: Mutex::new(Vec::new()),
            incomplete: AtomicBool::new(false),
        })
    }

    /// A resource that is gone is watched no more.
    pub fn forget(&self, who: &Nudge) {
        let mut realms = self.realms();
        for watch in realms.values_mut() {
            watch.index.forget(who);
        }
        realms.retain(|_, watch| !watch.idle());
    }

    /// The watch of a realm, made (and its poller started) when new.
    fn watch_of<'a>(
        self: &Arc<Self>,
        realms: &'a mut HashMap<RealmKey, RealmWatch>,
        key: &RealmKey,
        connection: &Arc<Connection>,
    ) -> &'a mut RealmWatch {
        let watch = realms.entry(key.clone()).or_insert_with(|| {
            let generation = self.generations.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(self.clone().poll(key.clone(), generation));
            RealmWatch {
                connection: connection.clone(),
                index: PathIndex::default(),
                writes: HashMap::new(),
                generation,
            }
        });
        // A new connection (new URL or credentials) polls from then on.
        if !Arc::ptr_eq(&watch.connection, connection) {
            watch.connection = connection.clone();
        }
        watch
    }

    fn record(self: &Arc<Self>, connection: &Arc<Connection>, realm: &str, who: Nudge, paths: Vec<String>) {
        let key = (connection.key.clone(), realm.to_owned());
        let mut realms = self.realms();
        // A resource lives in one realm: moved, it leaves the old one.
        for (other, watch) in realms.iter_mut() {
            if *other != key {
                watch.index.forget(&who);
            }
        }
        realms.retain(|other, watch| *other == key || !watch.idle());
        tracing::trace!(keycloak = %key.0, realm = %key.1, resource = %who.key, ?paths, "watching for drift");
        self.watch_of(&mut realms, &key, connection).index.record(who, paths);
    }

    /// The operator wrote `path` in `realm`: the event it makes is its own.
    fn wrote(self: &Arc<Self>, connection: &Arc<Connection>, realm: &str, path: String) {
        let key = (connection.key.clone(), realm.to_owned());
        let mut realms = self.realms();
        self.watch_of(&mut realms, &key, connection)
            .writes
            .insert(path, now_ms());
    }

    fn nudge(&self, who: impl IntoIterator<Item = Nudge>) {
        for nudge in who {
            // No receiver means no controller runs: nothing to requeue.
            let _ = self.nudges.send(nudge);
        }
    }

    /// Polls one realm until no resource records paths in it any more, or
    /// leadership ends.
    async fn poll(self: Arc<Self>, key: RealmKey, generation: u64) {
        let realm = key.1.clone();
        let mut cursor = Cursor::starting_now();
        // Turned on once per poller; turned off again by hand, the resync
        // still catches drift.
        let mut enabled = false;
        let mut own_cache = None;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
            // The realm's current connection (a new URL or new credentials
            // make a new one), unless nothing is watched there any more.
            let connection = {
                let mut realms = self.realms();
                match realms.get_mut(&key) {
                    Some(watch) if watch.generation == generation => {
                        watch.forget_old_writes(now_ms());
                        if watch.idle() {
                            realms.remove(&key);
                            return;
                        }
                        watch.connection.clone()
                    }
                    _ => return,
                }
            };
            if !enabled {
                match enable_admin_events(&connection, &realm, self.settings.retention).await {
                    Ok(written) => {
                        enabled = true;
                        for path in written {
                            self.wrote(&connection, &realm, path);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(keycloak = %key.0, %realm, %error, "cannot turn admin events on; drift in this realm is found at resync only");
                        continue;
                    }
                }
            }
            let own = own_user(&connection, &mut own_cache).await;
            match read_new_events(&connection, &realm, &mut cursor).await {
                Ok(Batch { events, overflow }) => {
                    let concerned = {
                        let mut realms = self.realms();
                        let Some(watch) = realms.get_mut(&key).filter(|w| w.generation == generation) else {
                            return;
                        };
                        if overflow {
                            tracing::info!(keycloak = %key.0, %realm, "more admin events than one poll reads; requeuing the realm's resources");
                            watch.index.everyone()
                        } else {
                            let mut concerned = HashSet::new();
                            for event in &events {
                                let source = if watch.by_operator(event, own.as_deref()) {
                                    "operator"
                                } else {
                                    concerned.extend(watch.index.concerned(&event.resource_path));
                                    "other"
                                };
                                tracing::debug!(keycloak = %key.0, %realm, path = %event.resource_path, operation = %event.operation_type, source, "admin event");
                                self.metrics.admin_events.with_label_values(&[&key.0, source]).inc();
                            }
                            concerned
                        }
                    };
                    if !concerned.is_empty() {
                        tracing::debug!(keycloak = %key.0, %realm, resources = concerned.len(), "admin events changed managed objects; requeuing");
                    }
                    self.nudge(concerned);
                }
                Err(error) => {
                    tracing::debug!(keycloak = %key.0, %realm, %error, "cannot read admin events");
                }
            }
        }
    }
}

/// Records the realm paths one reconcile touched, for the watch; handed
/// over when the reconcile's gateway is dropped.
pub struct PathRecorder {
    watch: Arc<DriftWatch>,
    connection: Arc<Connection>,
    realm: String,
    who: Nudge,
    paths: Mutex<Vec<String>>,
    incomplete: AtomicBool,
}

impl PathRecorder {
    /// Notes what one request touched. `segments` are the checked path's,
    /// values decoded, as Keycloak names objects in admin events.
    pub fn observe(&self, method: Method, segments: &[String], result: &Result<KeycloakResponse, KeycloakError>) {
        let response = match result {
            Ok(response) if response.status < 500 => response,
            Ok(_) | Err(KeycloakError::Unavailable(_)) => {
                self.incomplete.store(true, Ordering::Relaxed);
                return;
            }
            Err(_) => return,
        };
        let Some(relative) = realm_relative(segments, &self.realm) else {
            return;
        };
        let mut paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        let mut push = |path: String| {
            if paths.len() < MAX_PATHS && !paths.contains(&path) {
                paths.push(path);
            }
        };
        let success = (200..300).contains(&response.status);
        match method {
            // A list (a search, say): the objects it found, by id; the list
            // itself would make every change below it concern us. Only a
            // list's ids are read: every answer passes here, and the component
            // parses it in full already.
            Method::Get if success && response.body.trim_start().starts_with('[') => {
                if is_membership_list(&relative) {
                    push(relative.clone());
                }
                if let Ok(items) = serde_json::from_str::<Vec<Listed>>(&response.body)
                    && items.len() <= MAX_LISTED
                {
                    for item in &items {
                        for path in listed_paths(&relative, item) {
                            push(path);
                        }
                    }
                }
            }
            Method::Get if success => push(relative),
            Method::Put if success => {
                self.wrote(relative.clone());
                push(relative);
            }
            // The realm itself, created.
            Method::Post if success && segments.len() == 1 => push(String::new()),
            Method::Post if success => {
                if let Some(id) = response.location.as_deref().and_then(|l| l.rsplit('/').next()) {
                    let created = if is_subgroup_list(&relative) {
                        format!("groups/{id}")
                    } else {
                        join(&relative, id)
                    };
                    self.wrote(created.clone());
                    push(created);
                } else {
                    self.wrote(relative);
                }
            }
            Method::Delete if success => self.wrote(relative),
            _ => {}
        }
    }

    fn wrote(&self, path: String) {
        self.watch.wrote(&self.connection, &self.realm, path);
    }
}

impl Drop for PathRecorder {
    fn drop(&mut self) {
        let paths = std::mem::take(self.paths.get_mut().unwrap_or_else(|p| p.into_inner()));
        // A reconcile cut short by Keycloak saw less than the last one did:
        // keep what the last one recorded.
        if paths.is_empty() || self.incomplete.load(Ordering::Relaxed) {
            return;
        }
        self.watch
            .record(&self.connection, &self.realm, self.who.clone(), paths);
    }
}

/// An item of a list Keycloak answered, as far as the watch reads it.
#[derive(serde::Deserialize)]
struct Listed {
    id: Option<String>,
    name: Option<String>,
    /// What names the objects that carry no id (required actions).
    alias: Option<String>,
}

/// The paths under which admin events name an object found by a list at
/// `relative`. Most objects by id below the list; roles by name below it
/// (`roles/{name}`, `clients/{id}/roles/{name}`) and by id under
/// `roles-by-id/`, the two ways Keycloak addresses them (the admin console
/// uses the second); subgroups, listed below their parent, as `groups/{id}`;
/// objects without an id (required actions) by their alias.
fn listed_paths(relative: &str, item: &Listed) -> Vec<String> {
    let Some(id) = item.id.as_deref() else {
        return item
            .alias
            .as_deref()
            .map(|alias| join(relative, alias))
            .into_iter()
            .collect();
    };
    if is_subgroup_list(relative) {
        return vec![format!("groups/{id}")];
    }
    let is_role_list = relative == "roles"
        || relative
            .strip_prefix("clients/")
            .is_some_and(|rest| rest.ends_with("/roles"));
    match (is_role_list, item.name.as_deref()) {
        (true, Some(name)) => vec![join(relative, name), format!("roles-by-id/{id}")],
        (true, None) => vec![format!("roles-by-id/{id}")],
        (false, _) => vec![join(relative, id)],
    }
}

/// Whether `relative` lists which objects belong to one of the realm's
/// sets (its default groups, its default and optional client scopes).
/// Joining such a set is an event below the list, on an object the list did
/// not hold, so the list itself is watched.
fn is_membership_list(relative: &str) -> bool {
    matches!(
        relative,
        "default-groups" | "default-default-client-scopes" | "default-optional-client-scopes"
    )
}

/// Whether `relative` lists a group's subgroups (`groups/{id}/children`),
/// which Keycloak's events name by their own id under `groups/`.
fn is_subgroup_list(relative: &str) -> bool {
    relative
        .strip_prefix("groups/")
        .and_then(|rest| rest.strip_suffix("/children"))
        .is_some_and(|id| !id.contains('/'))
}

fn join(parent: &str, id: &str) -> String {
    if parent.is_empty() {
        id.to_owned()
    } else {
        format!("{parent}/{id}")
    }
}

/// `["realms", realm, rest…]` as `rest` joined with `/`; `""` for the realm
/// itself and for its creation (`["realms"]`).
fn realm_relative(segments: &[String], realm: &str) -> Option<String> {
    match segments {
        [realms] if realms == "realms" => Some(String::new()),
        [realms, named, rest @ ..] if realms == "realms" && named == realm => Some(rest.join("/")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::admin_events::AuthDetails;
    use super::admin_events::tests::event;
    use super::*;

    #[test]
    fn an_event_is_the_operators_when_it_wrote_that_path_then_as_that_user() {
        let writes = || HashMap::from([("clients/1".to_owned(), 1_000_000)]);
        let on = |path: &str, time: i64, user: Option<&str>| AdminEvent {
            resource_path: path.into(),
            auth_details: Some(AuthDetails {
                user_id: user.map(str::to_owned),
            }),
            ..event("e", time)
        };
        assert!(made_by_operator(
            &mut writes(),
            &on("clients/1", 1_000_400, Some("op")),
            Some("op")
        ));
        assert!(
            made_by_operator(&mut writes(), &on("clients/1", 1_000_400, Some("op")), None),
            "the account unknown, the write decides"
        );
        assert!(
            !made_by_operator(&mut writes(), &on("clients/1", 1_000_400, Some("alice")), Some("op")),
            "another account"
        );
        assert!(
            !made_by_operator(&mut writes(), &on("clients/2", 1_000_400, Some("op")), Some("op")),
            "another object"
        );
        assert!(
            !made_by_operator(&mut writes(), &on("clients/1", 1_030_000, Some("op")), Some("op")),
            "long after the operator's write: someone sharing its account"
        );
        let mut once = writes();
        assert!(made_by_operator(&mut once, &on("clients/1", 1_000_400, None), None));
        assert!(
            !made_by_operator(&mut once, &on("clients/1", 1_000_900, None), None),
            "one write, one event: the next change is someone else's"
        );
    }

    #[test]
    fn listed_roles_are_watched_by_name_and_by_id_other_objects_by_id() {
        let listed = |id: &str, name: &str| Listed {
            id: Some(id.into()),
            name: Some(name.into()),
            alias: None,
        };
        assert_eq!(
            listed_paths("roles", &listed("r1", "viewer")),
            vec!["roles/viewer".to_owned(), "roles-by-id/r1".to_owned()]
        );
        assert_eq!(
            listed_paths("clients/c1/roles", &listed("r2", "admin")),
            vec!["clients/c1/roles/admin".to_owned(), "roles-by-id/r2".to_owned()]
        );
        assert_eq!(
            listed_paths("clients", &listed("c1", "app")),
            vec!["clients/c1".to_owned()]
        );
        let nothing = Listed {
            id: None,
            name: None,
            alias: None,
        };
        assert!(listed_paths("clients", &nothing).is_empty());
        let action = Listed {
            alias: Some("VERIFY_EMAIL".into()),
            ..nothing
        };
        assert_eq!(
            listed_paths("authentication/required-actions", &action),
            vec!["authentication/required-actions/VERIFY_EMAIL"],
            "an object without an id by its alias"
        );
        assert_eq!(
            listed_paths("groups/g1/children", &listed("g2", "backend")),
            vec!["groups/g2"],
            "a subgroup is named by its own id"
        );
        assert_eq!(listed_paths("groups", &listed("g1", "eng")), vec!["groups/g1"]);
    }

    #[test]
    fn the_realms_sets_are_watched_as_lists_other_lists_by_their_items() {
        assert!(is_membership_list("default-groups"));
        assert!(is_membership_list("default-default-client-scopes"));
        assert!(is_membership_list("default-optional-client-scopes"));
        assert!(!is_membership_list("groups"));
        assert!(!is_membership_list("clients/c1/default-client-scopes"));
    }

    #[test]
    fn paths_are_relative_to_the_realm() {
        let segments = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            realm_relative(&segments(&["realms", "shop", "clients", "1"]), "shop"),
            Some("clients/1".into())
        );
        assert_eq!(
            realm_relative(&segments(&["realms", "shop"]), "shop"),
            Some(String::new())
        );
        assert_eq!(realm_relative(&segments(&["realms"]), "shop"), Some(String::new()));
        assert_eq!(realm_relative(&segments(&["realms", "other", "clients"]), "shop"), None);
    }
}
