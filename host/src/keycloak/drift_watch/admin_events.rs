//! Keycloak's side of the drift watch: reading a realm's admin events since
//! the last poll, turning them on with a retention, and finding the admin
//! user the operator's own events name.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::now_ms;
use crate::keycloak::connection::{Connection, Outgoing};
use crate::keycloak::route::{self, Scope};
use crate::keycloak::token::Principal;
use crate::runtime::model::{KeycloakError, KeycloakResponse, Method};

/// Events read per request; a poll that finds a full page of new events
/// reads on, up to `MAX_PAGES`, then requeues the whole realm.
const PAGE: usize = 200;
const MAX_PAGES: usize = 5;
/// Events this much older than the watch's start are looked at too: the
/// clocks of the host and of Keycloak differ a little.
const CLOCK_SLACK_MS: i64 = 5_000;

/// One admin event, as far as the watch reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AdminEvent {
    #[serde(default)]
    pub(super) id: Option<String>,
    pub(super) time: i64,
    #[serde(default)]
    pub(super) resource_path: String,
    #[serde(default)]
    pub(super) operation_type: String,
    #[serde(default)]
    pub(super) auth_details: Option<AuthDetails>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AuthDetails {
    #[serde(default)]
    pub(super) user_id: Option<String>,
}

impl AdminEvent {
    pub(super) fn user(&self) -> Option<&str> {
        self.auth_details.as_ref()?.user_id.as_deref()
    }

    /// Events have an id since Keycloak 22; before, time, path and
    /// operation tell them apart well enough.
    fn identity(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| format!("{}:{}:{}", self.time, self.operation_type, self.resource_path))
    }
}

/// Where the last poll stopped: the newest event's time, and the events seen
/// at that very millisecond (the next poll reads from it again).
pub(super) struct Cursor {
    time: i64,
    seen: HashSet<String>,
}

impl Cursor {
    pub(super) fn starting_now() -> Self {
        Cursor {
            time: now_ms().saturating_sub(CLOCK_SLACK_MS),
            seen: HashSet::new(),
        }
    }

    fn is_new(&self, event: &AdminEvent) -> bool {
        event.time > self.time || (event.time == self.time && !self.seen.contains(&event.identity()))
    }

    fn advance(&mut self, events: &[AdminEvent]) {
        let Some(newest) = events.iter().map(|e| e.time).max() else {
            return;
        };
        if newest > self.time {
            self.time = newest;
            self.seen.clear();
        }
        self.seen
            .extend(events.iter().filter(|e| e.time == self.time).map(AdminEvent::identity));
    }
}

pub(super) struct Batch {
    pub(super) events: Vec<AdminEvent>,
    pub(super) overflow: bool,
}

/// The drift watch's own requests are told apart from components' in the
/// request metrics by the route label.
pub(super) fn metrics_route(template: &str) -> String {
    format!("drift-watch:{template}")
}

pub(super) async fn admin_get(
    connection: &Connection,
    template: &str,
    params: &[String],
    query: &[(String, String)],
) -> Result<KeycloakResponse, KeycloakError> {
    let checked = route::check(&Scope::Instance, Method::Get, template, params, None)?;
    connection
        .execute(&Outgoing {
            method: Method::Get,
            path: &checked.path,
            route: &metrics_route(template),
            query,
            body: None,
        })
        .await
}

/// The events newer than `cursor`, newest first as Keycloak returns them.
pub(super) async fn read_new_events(
    connection: &Connection,
    realm: &str,
    cursor: &mut Cursor,
) -> Result<Batch, KeycloakError> {
    let mut new = Vec::new();
    for page in 0..MAX_PAGES {
        let query = [
            ("first".to_owned(), (page * PAGE).to_string()),
            ("max".to_owned(), PAGE.to_string()),
            ("dateFrom".to_owned(), cursor.time.to_string()),
        ];
        let response = admin_get(connection, "/realms/{realm}/admin-events", &[realm.to_owned()], &query).await?;
        if response.status != 200 {
            return Err(KeycloakError::Invalid(format!(
                "admin events of realm {realm}: HTTP {}",
                response.status
            )));
        }
        let events: Vec<AdminEvent> = serde_json::from_str(&response.body)
            .map_err(|e| KeycloakError::Invalid(format!("admin events of realm {realm}: {e}")))?;
        let full = events.len() == PAGE;
        let before = new.len();
        new.extend(events.into_iter().filter(|e| cursor.is_new(e)));
        // Newest first: a page with old events in it reached the cursor.
        if !full || new.len() - before < PAGE {
            cursor.advance(&new);
            return Ok(Batch {
                events: new,
                overflow: false,
            });
        }
    }
    cursor.advance(&new);
    Ok(Batch {
        events: new,
        overflow: true,
    })
}

pub(super) async fn admin_json(
    connection: &Connection,
    template: &str,
    params: &[String],
    query: &[(String, String)],
) -> Result<Value, KeycloakError> {
    let response = admin_get(connection, template, params, query).await?;
    if response.status != 200 {
        return Err(KeycloakError::Invalid(format!(
            "GET {template}: HTTP {}",
            response.status
        )));
    }
    serde_json::from_str(&response.body).map_err(|e| KeycloakError::Invalid(format!("GET {template}: {e}")))
}

pub(super) async fn admin_put(
    connection: &Connection,
    template: &str,
    realm: &str,
    body: &Value,
) -> Result<(), KeycloakError> {
    let checked = route::check(&Scope::Instance, Method::Put, template, &[realm.to_owned()], None)?;
    let body = body.to_string();
    let response = connection
        .execute(&Outgoing {
            method: Method::Put,
            path: &checked.path,
            route: &metrics_route(template),
            query: &[],
            body: Some(&body),
        })
        .await?;
    if (200..300).contains(&response.status) {
        Ok(())
    } else {
        Err(KeycloakError::Invalid(format!(
            "PUT {template}: HTTP {}",
            response.status
        )))
    }
}

/// Turns admin events on in `realm` (keeping the rest of its events
/// configuration) and gives them a retention, unless both already hold: a
/// retention set by hand, or by the realm's own spec, stands. Returns the
/// realm paths it wrote.
pub(super) async fn enable_admin_events(
    connection: &Connection,
    realm: &str,
    retention: Duration,
) -> Result<Vec<String>, KeycloakError> {
    let params = [realm.to_owned()];
    let mut written = Vec::new();
    let mut config = admin_json(connection, "/realms/{realm}/events/config", &params, &[]).await?;
    if config.get("adminEventsEnabled") != Some(&Value::Bool(true)) {
        config["adminEventsEnabled"] = Value::Bool(true);
        admin_put(connection, "/realms/{realm}/events/config", realm, &config).await?;
        written.push("events/config".to_owned());
        tracing::info!(keycloak = %connection.key, %realm, "turned admin events on to catch drift");
    }
    // The retention is a realm attribute. A partial update leaves the realm's
    // other fields as they are, but replaces its attributes: the others
    // (the owner's record among them) are sent back with it.
    let representation = admin_json(connection, "/realms/{realm}", &params, &[]).await?;
    let mut attributes = representation
        .get("attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let retained = attributes
        .get("adminEventsExpiration")
        .and_then(Value::as_str)
        .is_some_and(|v| !v.is_empty());
    if !retained {
        let seconds = retention.as_secs().max(1).to_string();
        attributes.insert("adminEventsExpiration".into(), Value::from(seconds.clone()));
        let update = serde_json::json!({"attributes": attributes});
        admin_put(connection, "/realms/{realm}", realm, &update).await?;
        written.push(String::new());
        tracing::info!(keycloak = %connection.key, %realm, retention_seconds = %seconds, "set the retention of admin events");
    }
    Ok(written)
}

/// The id of the admin user the operator's own events name: the token's
/// subject, or else looked up once per set of credentials.
pub(super) async fn own_user(connection: &Connection, cache: &mut Option<(Principal, String)>) -> Option<String> {
    let identity = connection.identity().await?;
    if let Some(subject) = identity.subject {
        return Some(subject);
    }
    if let Some((principal, id)) = cache.as_ref()
        && *principal == identity.principal
    {
        return Some(id.clone());
    }
    let first_id = |list: Value| list.get(0)?.get("id")?.as_str().map(str::to_owned);
    let id = match &identity.principal {
        Principal::User { realm, username } => {
            let query = [
                ("username".to_owned(), username.clone()),
                ("exact".to_owned(), "true".to_owned()),
            ];
            first_id(
                admin_json(connection, "/realms/{realm}/users", std::slice::from_ref(realm), &query)
                    .await
                    .ok()?,
            )?
        }
        Principal::ServiceAccount { realm, client_id } => {
            let query = [("clientId".to_owned(), client_id.clone())];
            let client = first_id(
                admin_json(
                    connection,
                    "/realms/{realm}/clients",
                    std::slice::from_ref(realm),
                    &query,
                )
                .await
                .ok()?,
            )?;
            let user = admin_json(
                connection,
                "/realms/{realm}/clients/{id}/service-account-user",
                &[realm.clone(), client],
                &[],
            )
            .await
            .ok()?;
            user.get("id")?.as_str()?.to_owned()
        }
    };
    *cache = Some((identity.principal, id.clone()));
    Some(id)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::keycloak::drift_watch) fn event(id: &str, time: i64) -> AdminEvent {
        AdminEvent {
            id: Some(id.into()),
            time,
            resource_path: String::new(),
            operation_type: "UPDATE".into(),
            auth_details: None,
        }
    }

    #[test]
    fn the_cursor_sees_each_event_once_even_several_in_one_millisecond() {
        let mut cursor = Cursor {
            time: 100,
            seen: HashSet::new(),
        };
        assert!(!cursor.is_new(&event("old", 99)));
        let first = [event("a", 150), event("b", 150), event("c", 120)];
        assert!(first.iter().all(|e| cursor.is_new(e)));
        cursor.advance(&first);
        assert_eq!(cursor.time, 150);
        assert!(!cursor.is_new(&event("a", 150)));
        assert!(cursor.is_new(&event("d", 150)), "same millisecond, not seen yet");
        assert!(!cursor.is_new(&event("c", 120)));
    }
}
