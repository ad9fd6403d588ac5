//! One Keycloak instance: its admin token, circuit breaker, rate limit and
//! the request loop with retries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use rand::Rng;
use tokio::sync::Semaphore;

use super::KeycloakSettings;
use super::circuit::{CircuitBreaker, CircuitState};
use super::limiter::RateLimiter;
use super::recovery::Recovery;
use super::server_info::{SERVER_INFO_TTL, ServerInfoCache};
use super::token::{self, CredentialSource, Identity, Token, TokenError};
use crate::metrics::Metrics;
use crate::runtime::model::{KeycloakError, KeycloakResponse, Method};

/// A request, after the route has been checked.
pub struct Outgoing<'a> {
    /// Method.
    pub method: Method,
    /// Path under `/admin`, encoded.
    pub path: &'a str,
    /// Route template, for metrics.
    pub route: &'a str,
    /// Query parameters.
    pub query: &'a [(String, String)],
    /// JSON body.
    pub body: Option<&'a str>,
}

/// One Keycloak instance.
pub struct Connection {
    /// `namespace/name` of the `Keycloak` resource.
    pub key: String,
    /// Base URL.
    pub base_url: String,
    pub(super) source: CredentialSource,
    http: reqwest::Client,
    secrets: Api<Secret>,
    token: tokio::sync::Mutex<Option<Token>>,
    circuit: CircuitBreaker,
    limiter: RateLimiter,
    in_flight: Semaphore,
    /// Slots for writes to a whole realm (see [`is_realm_write`]).
    realm_writes: Semaphore,
    /// The last `/admin/serverinfo` answer, shared by every resource on
    /// this connection.
    pub(super) server_info: ServerInfoCache,
    /// Resources whose reconcile found this Keycloak unavailable, retried
    /// as soon as its circuit closes.
    pub(super) recovery: Recovery,
    settings: KeycloakSettings,
    metrics: Arc<Metrics>,
}

/// Whether a request writes a whole realm: creating, updating, deleting or
/// importing into one costs Keycloak seconds of CPU on a small server, and
/// piling those up makes each one time out. Writes below a realm (a client,
/// a role) cost milliseconds and are limited only by the requests in flight.
/// `path` is the encoded path under `/admin`, so each segment is one value.
pub(super) fn is_realm_write(method: Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    method != Method::Get
        && match segments.as_slice() {
            ["realms"] | ["realms", _] => true,
            ["realms", _, last] => *last == "partialImport",
            _ => false,
        }
}

enum Attempt {
    Done(Result<KeycloakResponse, KeycloakError>),
    Retry {
        error: KeycloakError,
        after: Option<Duration>,
    },
}

impl Connection {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        key: String,
        base_url: String,
        source: CredentialSource,
        http: reqwest::Client,
        secrets: Api<Secret>,
        settings: KeycloakSettings,
        metrics: Arc<Metrics>,
        recovery: Recovery,
    ) -> Self {
        metrics.circuit_state.with_label_values(&[&key]).set(0);
        // Every series from the start at zero, so that a rate or an alert
        // sees the first transition.
        for state in ["closed", "half-open", "open"] {
            metrics.circuit_transitions.with_label_values(&[&key, state]);
        }
        Connection {
            circuit: CircuitBreaker::new(settings.circuit),
            limiter: RateLimiter::new(settings.rate_limit, settings.burst),
            in_flight: Semaphore::new(settings.max_in_flight.max(1)),
            realm_writes: Semaphore::new(settings.max_concurrent_writes.max(1)),
            server_info: ServerInfoCache::new(SERVER_INFO_TTL),
            recovery,
            key,
            base_url,
            source,
            http,
            secrets,
            token: tokio::sync::Mutex::new(None),
            settings,
            metrics,
        }
    }

    /// Who this connection's token is for, once it has one.
    pub async fn identity(&self) -> Option<Identity> {
        self.token.lock().await.as_ref().map(|t| t.identity.clone())
    }

    /// The circuit's state.
    pub fn circuit_state(&self) -> CircuitState {
        self.circuit.state()
    }

    fn note_transition(&self, changed: Option<CircuitState>) {
        if let Some(state) = changed {
            self.metrics
                .circuit_state
                .with_label_values(&[&self.key])
                .set(state.as_gauge());
            let name = match state {
                CircuitState::Closed => "closed",
                CircuitState::HalfOpen => "half-open",
                CircuitState::Open => "open",
            };
            self.metrics
                .circuit_transitions
                .with_label_values(&[&self.key, name])
                .inc();
            match state {
                CircuitState::Open => {
                    tracing::warn!(keycloak = %self.key, "circuit opened: Keycloak is failing; requests fail fast until a probe succeeds")
                }
                CircuitState::Closed => {
                    let waiting = self.recovery.closed();
                    tracing::info!(keycloak = %self.key, retried_now = waiting, "circuit closed: Keycloak answers again")
                }
                CircuitState::HalfOpen => {}
            }
        }
    }

    fn unavailable_open(&self, retry_in: Duration) -> KeycloakError {
        KeycloakError::Unavailable(format!(
            "Keycloak {} is failing; its circuit breaker is open (next probe in {}s)",
            self.key,
            retry_in.as_secs().max(1)
        ))
    }

    /// A fresh admin token: cached, refreshed, or obtained anew.
    async fn bearer(&self, force_new: bool) -> Result<String, TokenError> {
        let mut cached = self.token.lock().await;
        if !force_new && let Some(access) = cached.as_ref().and_then(Token::fresh) {
            return Ok(access.to_owned());
        }
        let previous = if force_new { None } else { cached.as_ref() };
        let timeout = self.settings.request_timeout;
        let result = match token::obtain(
            &self.http,
            &self.base_url,
            &self.secrets,
            &self.source,
            previous,
            timeout,
        )
        .await
        {
            // A refused refresh token (session expired) gets one full grant.
            Err(TokenError::Refused(_)) if previous.is_some() => {
                token::obtain(&self.http, &self.base_url, &self.secrets, &self.source, None, timeout).await
            }
            other => other,
        };
        let token = result?;
        let access = token.fresh().unwrap_or_default().to_owned();
        *cached = Some(token);
        Ok(access)
    }

    async fn invalidate_token(&self) {
        *self.token.lock().await = None;
    }

    /// Sends one request with circuit breaking, rate limiting, retries with
    /// backoff on 429/5xx and transport errors, and a timeout per attempt.
    pub async fn execute(&self, request: &Outgoing<'_>) -> Result<KeycloakResponse, KeycloakError> {
        let route = self.metrics.route_label(request.route);
        self.refuse_rewritten_path(request)?;
        let mut reauthenticated = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(request, &route, &mut reauthenticated).await {
                Attempt::Done(result) => return result,
                Attempt::Retry { error, after } => {
                    if attempt >= self.settings.max_attempts {
                        return Err(error);
                    }
                    let backoff = self.settings.retry_base * 2u32.saturating_pow(attempt - 1);
                    let jitter = rand::rng().random_range(0.5..1.0);
                    let wait = after.unwrap_or(backoff.mul_f64(jitter)).min(Duration::from_secs(5));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The route module keeps every value one segment; this makes sure the
    /// URL parser agrees, so that no normalisation it applies (dot
    /// segments, backslashes) can move a request outside the path that
    /// was checked.
    fn refuse_rewritten_path(&self, request: &Outgoing<'_>) -> Result<(), KeycloakError> {
        let expected = format!("/admin{}", request.path);
        match reqwest::Url::parse(&format!("{}{expected}", self.base_url)) {
            Ok(url) if url.path().ends_with(&expected) => Ok(()),
            _ => Err(KeycloakError::Forbidden(format!(
                "{} {}: the URL would not keep the checked path",
                request.method.as_str(),
                request.route
            ))),
        }
    }

    async fn attempt(&self, request: &Outgoing<'_>, route: &str, reauthenticated: &mut bool) -> Attempt {
        let method = request.method.as_str();
        let count = |code: &str| {
            self.metrics
                .keycloak_requests
                .with_label_values(&[&self.key, method, route, code])
                .inc();
        };
        // Queue here, before the circuit and the timeout: waiting for a slot
        // is not Keycloak being slow.
        let Ok(_slot) = self.in_flight.acquire().await else {
            return Attempt::Done(Err(KeycloakError::Unavailable("the connection is closing".into())));
        };
        let _write_slot = if !is_realm_write(request.method, request.path) {
            None
        } else {
            match self.realm_writes.acquire().await {
                Ok(slot) => Some(slot),
                Err(_) => return Attempt::Done(Err(KeycloakError::Unavailable("the connection is closing".into()))),
            }
        };
        let permit = match self.circuit.try_acquire() {
            Ok(permit) => permit,
            Err(retry_in) => {
                count("circuit_open");
                return Attempt::Done(Err(self.unavailable_open(retry_in)));
            }
        };
        self.limiter.acquire().await;
        let bearer = match self.bearer(false).await {
            Ok(bearer) => bearer,
            Err(TokenError::Transport(message)) => {
                self.note_transition(self.circuit.record(permit, false));
                count("error");
                return Attempt::Retry {
                    error: KeycloakError::Unavailable(format!("Keycloak {}: {message}", self.key)),
                    after: None,
                };
            }
            Err(TokenError::Refused(error)) => {
                // Keycloak answered: it is up, the credentials are the problem.
                self.note_transition(self.circuit.record(permit, true));
                count("auth_failed");
                return Attempt::Done(Err(error));
            }
        };
        let url = format!("{}/admin{}", self.base_url, request.path);
        let mut builder = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET),
                &url,
            )
            .bearer_auth(bearer)
            .timeout(self.settings.request_timeout);
        if !request.query.is_empty() {
            builder = builder.query(request.query);
        }
        if let Some(body) = request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_owned());
        }
        let started = Instant::now();
        let sent = builder.send().await;
        let elapsed = started.elapsed();
        self.metrics
            .keycloak_request_duration
            .with_label_values(&[&self.key, method, route])
            .observe(elapsed.as_secs_f64());
        // One line per request, with when it was sent (its timestamp minus
        // `elapsed_ms`): what shows that two replicas never wrote at once.
        // The route is the template, so no id or secret reaches the log.
        tracing::debug!(
            keycloak = %self.key,
            method,
            route,
            status = sent.as_ref().map_or(0, |r| r.status().as_u16()),
            elapsed_ms = %elapsed.as_millis(),
            "Keycloak request"
        );
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                self.note_transition(self.circuit.record(permit, false));
                count("error");
                let error_text = token::describe_transport_error(&error);
                let failure = KeycloakError::Unavailable(format!(
                    "{method} {} on Keycloak {}: {error_text}",
                    request.route, self.key
                ));
                // A POST that may have reached Keycloak is not repeated.
                let retry = request.method.is_idempotent() || error.is_connect();
                return if retry {
                    Attempt::Retry {
                        error: failure,
                        after: None,
                    }
                } else {
                    Attempt::Done(Err(failure))
                };
            }
        };
        let status = response.status().as_u16();
        count(&status.to_string());
        match status {
            502..=504 => {
                self.note_transition(self.circuit.record(permit, false));
                Attempt::Retry {
                    error: KeycloakError::Unavailable(format!("Keycloak {} answered {status}", self.key)),
                    after: None,
                }
            }
            429 => {
                self.note_transition(self.circuit.record(permit, true));
                let after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                Attempt::Retry {
                    error: KeycloakError::Unavailable(format!("Keycloak {} is rate limiting the operator", self.key)),
                    after,
                }
            }
            401 | 403 if !*reauthenticated => {
                // The token was revoked or the session ended, or it predates
                // a role the operator just gained (creating a realm grants
                // its admin roles to the creator): get a new one once.
                self.note_transition(self.circuit.record(permit, true));
                *reauthenticated = true;
                self.invalidate_token().await;
                Attempt::Retry {
                    error: KeycloakError::Unauthenticated(format!("Keycloak {} rejected the admin token", self.key)),
                    after: Some(Duration::ZERO),
                }
            }
            _ => {
                self.note_transition(self.circuit.record(permit, true));
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match response.text().await {
                    Ok(body) => Attempt::Done(Ok(KeycloakResponse { status, location, body })),
                    Err(error) => Attempt::Retry {
                        error: KeycloakError::Unavailable(format!(
                            "Keycloak {}: reading the answer failed: {}",
                            self.key,
                            token::describe_transport_error(&error)
                        )),
                        after: None,
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_to_a_whole_realm_take_a_realm_write_slot() {
        assert!(is_realm_write(Method::Post, "/realms"));
        assert!(is_realm_write(Method::Put, "/realms/shop"));
        assert!(is_realm_write(Method::Delete, "/realms/shop"));
        assert!(is_realm_write(Method::Post, "/realms/shop/partialImport"));
        assert!(!is_realm_write(Method::Get, "/realms/shop"));
        assert!(!is_realm_write(Method::Post, "/realms/shop/clients"));
        assert!(!is_realm_write(Method::Put, "/realms/shop/clients/0b7c"));
        assert!(!is_realm_write(Method::Put, "/realms/shop/events/config"));
        assert!(!is_realm_write(Method::Delete, "/realms/shop/roles/admin"));
    }
}
