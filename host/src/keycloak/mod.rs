//! Keycloak access for components: one [`Connection`] per `Keycloak`
//! resource, shared by every resource placed on it, and a scoped gateway per
//! reconcile that checks each request against what the resource may touch.

pub mod access;
mod circuit;
mod connection;
pub mod drift_watch;
pub mod guard;
mod limiter;
pub mod placement;
mod recovery;
pub mod route;
pub mod server_info;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use keycloak_operator_api::managed::naming;
use keycloak_operator_api::{AdminCredentials, AdminGrant};
use kube::{Api, Client};

pub use circuit::{CircuitSettings, CircuitState};
pub use connection::Connection;
use connection::Outgoing;
use drift_watch::PathRecorder;
use route::Scope;
pub use token::CredentialSource;

use crate::capability::Nudge;
use crate::metrics::Metrics;
use crate::runtime::imports::KeycloakGateway;
use crate::runtime::model::{KeycloakError, KeycloakRequest, KeycloakResponse};

/// How the host talks to Keycloak.
#[derive(Debug, Clone, Copy)]
pub struct KeycloakSettings {
    /// Circuit breaker thresholds.
    pub circuit: CircuitSettings,
    /// Attempts per request (first try included).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter.
    pub retry_base: Duration,
    /// Timeout of one attempt.
    pub request_timeout: Duration,
    /// Average requests per second per instance.
    pub rate_limit: f64,
    /// Burst size per instance.
    pub burst: u32,
    /// Requests in flight at once per instance.
    pub max_in_flight: usize,
    /// Writes (POST, PUT, DELETE) in flight at once per instance: creating
    /// or deleting a realm costs Keycloak seconds of CPU, and piling them up
    /// only makes every one of them time out.
    pub max_concurrent_writes: usize,
}

impl Default for KeycloakSettings {
    fn default() -> Self {
        KeycloakSettings {
            circuit: CircuitSettings::default(),
            max_attempts: 3,
            retry_base: Duration::from_millis(200),
            request_timeout: Duration::from_secs(30),
            rate_limit: 200.0,
            burst: 100,
            max_in_flight: 16,
            max_concurrent_writes: 4,
        }
    }
}

/// Everything needed to reach one Keycloak.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `namespace/name` of the `Keycloak` resource.
    pub key: String,
    /// Base URL, without a trailing slash.
    pub url: String,
    /// Admin credentials.
    pub source: CredentialSource,
}

impl Endpoint {
    /// The endpoint of a `Keycloak` resource's external form.
    pub fn new(namespace: &str, name: &str, url: &str, credentials: &AdminCredentials) -> Self {
        Endpoint {
            key: format!("{namespace}/{name}"),
            url: url.trim_end_matches('/').to_owned(),
            source: CredentialSource {
                namespace: namespace.to_owned(),
                chain: vec![credentials.clone()],
            },
        }
    }

    /// The endpoint of a managed Keycloak at `url`, reached with the
    /// operator's own client. `setup` adds the bootstrap admin as a fallback
    /// for the `Keycloak` resource's own reconciles, which create that
    /// client: realms and clients never use the bootstrap admin, or realms
    /// created with it would be administered by a user the operator stops
    /// using, out of its own client's reach.
    pub fn managed(namespace: &str, name: &str, url: &str, setup: bool) -> Self {
        let in_master = |secret_name: String, grant: AdminGrant| AdminCredentials {
            secret_name,
            grant,
            realm: "master".into(),
            client_id: "admin-cli".into(),
        };
        Endpoint {
            key: format!("{namespace}/{name}"),
            url: url.trim_end_matches('/').to_owned(),
            source: CredentialSource {
                namespace: namespace.to_owned(),
                chain: std::iter::once(in_master(
                    naming::operator_client_secret(name),
                    AdminGrant::ClientCredentials,
                ))
                .chain(setup.then(|| in_master(naming::bootstrap_admin_secret(name), AdminGrant::Password)))
                .collect(),
            },
        }
    }

    /// The key of this endpoint's connection: the setup credentials of a
    /// managed Keycloak get a connection (and token) of their own, so a token
    /// obtained as the bootstrap admin never serves another resource.
    fn connection_key(&self) -> String {
        if self.source.chain.len() > 1 {
            format!("{} (setup)", self.key)
        } else {
            self.key.clone()
        }
    }
}

/// The connections to every Keycloak in use.
pub struct KeycloakPool {
    http: reqwest::Client,
    client: Client,
    settings: KeycloakSettings,
    metrics: Arc<Metrics>,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    recoveries: tokio::sync::broadcast::Sender<Nudge>,
}

impl KeycloakPool {
    /// A pool sharing one HTTP client.
    pub fn new(client: Client, settings: KeycloakSettings, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("keycloak-operator/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(KeycloakPool {
            http,
            client,
            settings,
            metrics,
            connections: Mutex::new(HashMap::new()),
            // Room for every resource of a large installation waiting on one
            // Keycloak; a receiver that lags looks at all its resources.
            recoveries: tokio::sync::broadcast::channel(4096).0,
        })
    }

    /// Resources to reconcile now because the Keycloak they found
    /// unavailable answers again.
    pub fn recoveries(&self) -> tokio::sync::broadcast::Receiver<Nudge> {
        self.recoveries.subscribe()
    }

    /// The connection for an endpoint; a new one when the URL or the
    /// credential settings changed (the old one's token and circuit go).
    pub fn connection(&self, endpoint: &Endpoint) -> Arc<Connection> {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let key = endpoint.connection_key();
        if let Some(existing) = connections.get(&key)
            && existing.base_url == endpoint.url
            && existing.source == endpoint.source
        {
            return existing.clone();
        }
        let connection = Arc::new(Connection::new(
            endpoint.key.clone(),
            endpoint.url.clone(),
            endpoint.source.clone(),
            self.http.clone(),
            Api::namespaced(self.client.clone(), &endpoint.source.namespace),
            self.settings,
            self.metrics.clone(),
            recovery::Recovery::new(self.recoveries.clone()),
        ));
        connections.insert(key, connection.clone());
        connection
    }

    /// A gateway for one resource's requests on `connection`; `tenant`
    /// names the namespace of a tenant's resource, whose grants of realm
    /// administration are refused; `recorder` notes the paths touched, for
    /// the drift watch; `who` is the resource, retried when Keycloak
    /// recovers if one of its requests found it unavailable.
    pub fn gateway(
        connection: Arc<Connection>,
        scope: Scope,
        tenant: Option<String>,
        recorder: Option<PathRecorder>,
        who: Nudge,
    ) -> Arc<dyn KeycloakGateway> {
        Arc::new(ScopedGateway {
            connection,
            scope,
            tenant,
            recorder,
            who,
        })
    }
}

/// One resource's access to one Keycloak, limited to its scope.
pub struct ScopedGateway {
    connection: Arc<Connection>,
    scope: Scope,
    tenant: Option<String>,
    recorder: Option<PathRecorder>,
    who: Nudge,
}

impl ScopedGateway {
    /// `/serverinfo` (a GET: the route check refused any other method).
    /// Realms and clients get the connection's cached answer; the
    /// `Keycloak` resource reads it live, since its read is the health probe
    /// that must see Keycloak as it is now, and refreshes the cache with it.
    async fn server_info(&self, outgoing: &Outgoing<'_>) -> Result<KeycloakResponse, KeycloakError> {
        if self.scope == Scope::Instance {
            let result = self.connection.execute(outgoing).await;
            if outgoing.query.is_empty() {
                self.connection.server_info.store(&result).await;
            }
            return result;
        }
        if !outgoing.query.is_empty() {
            // One cached document answers every reader: a query would ask
            // for another.
            return Err(KeycloakError::Forbidden(format!(
                "GET {}: this resource may read the server's information only without a query",
                outgoing.route
            )));
        }
        self.connection
            .server_info
            .get_or_fetch(|| self.connection.execute(outgoing))
            .await
    }
}

impl KeycloakGateway for ScopedGateway {
    fn send(&self, request: KeycloakRequest) -> BoxFuture<'_, Result<KeycloakResponse, KeycloakError>> {
        Box::pin(async move {
            let checked = route::check(
                &self.scope,
                request.method,
                &request.route,
                &request.params,
                request.body.as_deref(),
            );
            let checked = match checked {
                Ok(checked) => checked,
                Err(error) => {
                    tracing::warn!(keycloak = %self.connection.key, route = %request.route, %error, "refused a component's Keycloak request");
                    return Err(error);
                }
            };
            if let (Some(namespace), Scope::InRealm(realm)) = (&self.tenant, &self.scope)
                && request.method != crate::runtime::model::Method::Get
            {
                let guard = guard::TenantGuard::new(&self.connection, realm, namespace);
                if let Err(error) = guard
                    .check(request.method, &checked.segments, request.body.as_deref())
                    .await
                {
                    tracing::warn!(keycloak = %self.connection.key, route = %request.route, %error, "refused a tenant's grant");
                    return Err(error);
                }
            }
            let outgoing = Outgoing {
                method: request.method,
                path: &checked.path,
                route: &checked.template,
                query: &request.query,
                body: request.body.as_deref(),
            };
            let since = self.connection.recovery.epoch();
            let result = if checked.template == server_info::ROUTE {
                self.server_info(&outgoing).await
            } else {
                self.connection.execute(&outgoing).await
            };
            if matches!(result, Err(KeycloakError::Unavailable(_))) {
                self.connection.recovery.wait(self.who.clone(), since);
            }
            if let Some(recorder) = &self.recorder {
                recorder.observe(request.method, &checked.segments, &result);
            }
            result
        })
    }
}
