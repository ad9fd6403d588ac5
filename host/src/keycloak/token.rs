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
        access: token.access_token,
        expires_at: now + Duration::from_secs(token.expires_in),
        refresh: token
            .refresh_token
            .map(|r| (r, now + Duration::from_secs(token.refresh_expires_in.unwrap_or(0)))),
        source: index,
    })
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
