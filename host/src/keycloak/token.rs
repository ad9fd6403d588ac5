//! Admin tokens: obtained with the credentials from the `Keycloak`'s Secret,
//! cached until shortly before they expire, refreshed with the refresh token
//! where Keycloak issued one (so that the password grant does not open a new
//! session every minute).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use keycloak_operator_api::{AdminCredentials, AdminGrant};
use kube::Api;
use serde::Deserialize;

use crate::runtime::model::KeycloakError;

/// Refresh this long before a token expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// Where the credentials are, and how to use them.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialSource {
    /// Namespace of the Secret (the `Keycloak`'s own).
    pub namespace: String,
    /// The `Keycloak`'s credential settings.
    pub credentials: AdminCredentials,
}

/// A cached token.
pub struct Token {
    access: String,
    expires_at: Instant,
    refresh: Option<(String, Instant)>,
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
    /// Keycloak answered but refused (does not count against the circuit).
    Refused(KeycloakError),
}

async fn secret_value(secrets: &Api<Secret>, source: &CredentialSource, key: &str) -> Result<String, KeycloakError> {
    let name = &source.credentials.secret_name;
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| KeycloakError::Unauthenticated(format!("cannot read Secret {}/{name}: {e}", source.namespace)))?;
    let secret = secret.ok_or_else(|| {
        KeycloakError::Unauthenticated(format!(
            "Secret {}/{name} with the admin credentials does not exist",
            source.namespace
        ))
    })?;
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
        .ok_or_else(|| {
            KeycloakError::Unauthenticated(format!("Secret {}/{name} has no key {key:?}", source.namespace))
        })?;
    String::from_utf8(bytes)
        .map(|s| s.trim_end_matches('\n').to_owned())
        .map_err(|_| {
            KeycloakError::Unauthenticated(format!(
                "key {key:?} of Secret {}/{name} is not UTF-8",
                source.namespace
            ))
        })
}

/// Obtains a new token, by refresh when possible.
pub async fn obtain(
    http: &reqwest::Client,
    base_url: &str,
    secrets: &Api<Secret>,
    source: &CredentialSource,
    previous: Option<&Token>,
    timeout: Duration,
) -> Result<Token, TokenError> {
    let c = &source.credentials;
    let url = format!("{base_url}/realms/{}/protocol/openid-connect/token", c.realm);
    let refresh = previous.and_then(Token::refresh_token).map(str::to_owned);
    let mut form: Vec<(&str, String)> = Vec::new();
    match (c.grant, refresh) {
        (AdminGrant::Password, Some(refresh)) => {
            form.extend([
                ("grant_type", "refresh_token".into()),
                ("client_id", c.client_id.clone()),
                ("refresh_token", refresh),
            ]);
        }
        (AdminGrant::Password, None) => {
            let username = secret_value(secrets, source, "username")
                .await
                .map_err(TokenError::Refused)?;
            let password = secret_value(secrets, source, "password")
                .await
                .map_err(TokenError::Refused)?;
            form.extend([
                ("grant_type", "password".into()),
                ("client_id", c.client_id.clone()),
                ("username", username),
                ("password", password),
            ]);
        }
        (AdminGrant::ClientCredentials, _) => {
            let client_id = secret_value(secrets, source, "client-id")
                .await
                .map_err(TokenError::Refused)?;
            let client_secret = secret_value(secrets, source, "client-secret")
                .await
                .map_err(TokenError::Refused)?;
            form.extend([
                ("grant_type", "client_credentials".into()),
                ("client_id", client_id),
                ("client_secret", client_secret),
            ]);
        }
    }
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
            source.namespace, c.secret_name
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
