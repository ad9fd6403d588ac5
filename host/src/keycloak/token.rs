//! Admin tokens: obtained with the credentials from a `Keycloak`'s Secrets,
//! cached until shortly before they expire, refreshed with the refresh token
//! where Keycloak issued one (so that the password grant does not open a new
//! session every minute).
//!
//! A managed Keycloak has two sources, in order: the operator's own
//! service-account client, and the bootstrap admin used only until that
//! client exists. The first source whose Secret exists is used, so the switch
//! happens on the next token after the client's Secret appears.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use keycloak_operator_api::{AdminCredentials, AdminGrant};
use kube::Api;
use serde::Deserialize;

use crate::runtime::model::KeycloakError;

/// Refresh this long before a token expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// Where the credentials are, and how to use them, in order of preference.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialSource {
    /// Namespace of the Secrets (the `Keycloak`'s own).
    pub namespace: String,
    /// Credential settings, preferred first; the first whose Secret exists
    /// is used.
    pub chain: Vec<AdminCredentials>,
}

/// A cached token and the credentials it came from.
pub struct Token {
    access: String,
    /// Who the token is for: the author of the operator's own admin events.
    pub identity: Identity,
    expires_at: Instant,
    refresh: Option<(String, Instant)>,
    source: usize,
}

impl Token {
    /// The bearer value, if still fresh.
    pub fn fresh(&self) -> Option<&str> {
        (Instant::now() + EXPIRY_MARGIN < self.expires_at).then_some(self.access.as_str())
    }

    fn refresh_token(&self) -> Option<&str> {
        self.refresh
            .as_ref()
            .filter(|(_, until)| Instant::now() + EXPIRY_MARGIN < *until)
            .map(|(token, _)| token.as_str())
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    refresh_token: Option<String>,
    refresh_expires_in: Option<u64>,
}

/// Who a token is for, as far as the host can tell without asking Keycloak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The admin user's id, when the token carries it (`sub`; Keycloak's
    /// lightweight tokens, admin-cli's among them, do not).
    pub subject: Option<String>,
    /// The credentials it was obtained with.
    pub principal: Principal,
}

/// The account behind a set of admin credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A user of `realm`, by username (password grant).
    User {
        /// Realm.
        realm: String,
        /// Username.
        username: String,
    },
    /// The service account of a client of `realm` (client credentials).
    ServiceAccount {
        /// Realm.
        realm: String,
        /// The client's clientId.
        client_id: String,
    },
}

/// What failed while getting a token.
pub enum TokenError {
    /// No answer from Keycloak (counts against the circuit).
    Transport(String),
    /// Keycloak answered but refused, or there are no usable credentials
    /// (does not count against the circuit).
    Refused(KeycloakError),
}

/// The form fields of one grant.
type Grant = Vec<(&'static str, String)>;

enum Lookup {
    Found(Grant),
    Missing(String),
}

/// Reads one key of a Secret; `Ok(None)` when the Secret does not exist.
async fn secret_value(
    secrets: &Api<Secret>,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>, KeycloakError> {
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| KeycloakError::Unauthenticated(format!("cannot read Secret {namespace}/{name}: {e}")))?;
    let Some(secret) = secret else { return Ok(None) };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| KeycloakError::Unauthenticated(format!("Secret {namespace}/{name} has no key {key:?}")))?;
    String::from_utf8(bytes)
        .map(|s| Some(s.trim_end_matches('\n').to_owned()))
        .map_err(|_| KeycloakError::Unauthenticated(format!("key {key:?} of Secret {namespace}/{name} is not UTF-8")))
}

/// The grant of one credential setting, if its Secret exists.
async fn lookup(secrets: &Api<Secret>, namespace: &str, c: &AdminCredentials) -> Result<Lookup, KeycloakError> {
    let name = &c.secret_name;
    let keys: [&str; 2] = match c.grant {
        AdminGrant::Password => ["username", "password"],
        AdminGrant::ClientCredentials => ["client-id", "client-secret"],
    };
    let (Some(first), Some(second)) = (
        secret_value(secrets, namespace, name, keys[0]).await?,
        secret_value(secrets, namespace, name, keys[1]).await?,
    ) else {
        return Ok(Lookup::Missing(format!("{namespace}/{name}")));
    };
    Ok(Lookup::Found(match c.grant {
        AdminGrant::Password => vec![
            ("grant_type", "password".into()),
            ("client_id", c.client_id.clone()),
            ("username", first),
            ("password", second),
        ],
        AdminGrant::ClientCredentials => vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", first),
            ("client_secret", second),
        ],
    }))
}

/// Obtains a new token: by refresh when the previous one allows it and no
/// preferred source has appeared since, else with the first source whose
/// Secret exists.
pub async fn obtain(
    http: &reqwest::Client,
    base_url: &str,
    secrets: &Api<Secret>,
    source: &CredentialSource,
    previous: Option<&Token>,
    timeout: Duration,
) -> Result<Token, TokenError> {
    let mut missing = Vec::new();
    let mut chosen = None;
    for (index, credentials) in source.chain.iter().enumerate() {
        match lookup(secrets, &source.namespace, credentials)
            .await
            .map_err(TokenError::Refused)?
        {
            Lookup::Found(grant) => {
                chosen = Some((index, credentials, grant));
                break;
            }
            Lookup::Missing(name) => missing.push(name),
        }
    }
    let Some((index, credentials, mut form)) = chosen else {
        return Err(TokenError::Refused(KeycloakError::Unauthenticated(format!(
            "no admin credentials: Secret {} does not exist",
            missing.join(" nor ")
        ))));
    };
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let realm = credentials.realm.clone();
    let principal = match credentials.grant {
        AdminGrant::Password => Principal::User {
            realm,
            username: field("username"),
        },
        AdminGrant::ClientCredentials => Principal::ServiceAccount {
            realm,
            client_id: field("client_id"),
        },
    };
    if let Some(refresh) = previous.filter(|p| p.source == index).and_then(Token::refresh_token) {
        form = vec![
            ("grant_type", "refresh_token".into()),
            ("client_id", credentials.client_id.clone()),
            ("refresh_token", refresh.to_owned()),
        ];
    }
    let url = format!("{base_url}/realms/{}/protocol/openid-connect/token", credentials.realm);
    let response = http.post(&url).form(&form).timeout(timeout).send().await.map_err(|e| {
        TokenError::Transport(format!(
            "token request to {url} failed: {}",
            describe_transport_error(&e)
        ))
    })?;
    let status = response.status();
    if status.is_server_error() {
        return Err(TokenError::Transport(format!("token endpoint answered {status}")));
    }
    if !status.is_success() {
        // A rejected refresh token is retried once as a full grant by the caller.
        let body = response.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("error_description")
                    .or_else(|| v.get("error"))
                    .and_then(|e| e.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| status.to_string());
        return Err(TokenError::Refused(KeycloakError::Unauthenticated(format!(
            "Keycloak refused the admin credentials of Secret {}/{} ({reason})",
            source.namespace, credentials.secret_name
        ))));
    }
    let token: TokenResponse = response
        .json()
        .await
        .map_err(|e| TokenError::Transport(format!("unreadable token response: {e}")))?;
    let now = Instant::now();
    Ok(Token {
        identity: Identity {
            subject: subject_of(&token.access_token),
            principal,
        },
        access: token.access_token,
        expires_at: deadline(now, token.expires_in),
        refresh: token
            .refresh_token
            .map(|r| (r, deadline(now, token.refresh_expires_in.unwrap_or(0)))),
        source: index,
    })
}

/// The `sub` claim of a JWT, read without checking the signature: the token
/// came straight from Keycloak, and only tells the operator's own events.
fn subject_of(jwt: &str) -> Option<String> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

/// Longest lifetime believed: Keycloak says how long a token lives, and a
/// number that large (or one that would overflow the clock) is not trusted
/// beyond a day.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// When a lifetime of `seconds` from `now` ends, with a checked add.
fn deadline(now: Instant, seconds: u64) -> Instant {
    now.checked_add(Duration::from_secs(seconds).min(MAX_LIFETIME))
        .unwrap_or(now)
}

/// A transport error in a few words, without URLs' query strings.
pub fn describe_transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "connection failed".into()
    } else {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lifetime_from_keycloak_never_overflows_the_clock() {
        let now = Instant::now();
        assert_eq!(deadline(now, 300), now + Duration::from_secs(300));
        assert_eq!(deadline(now, u64::MAX), now + MAX_LIFETIME, "capped, not a panic");
        assert_eq!(deadline(now, 0), now);
    }

    #[test]
    fn the_subject_is_read_from_the_payload() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"5e1f-user","exp":1}"#);
        assert_eq!(subject_of(&format!("h.{payload}.sig")), Some("5e1f-user".into()));
        assert_eq!(subject_of("not a jwt"), None);
        assert_eq!(subject_of("h.%%%.s"), None);
    }
}
