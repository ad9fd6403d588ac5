//! Wiring Keycloak to its database: an external PostgreSQL, a CloudNativePG
//! cluster (its `-app` Secret and `-rw` Service), or the dev database.

use keycloak_operator_api::managed::Database;
use keycloak_operator_sdk::ReconcileError;
use keycloak_operator_sdk::error::{invalid_spec, transient};
use serde_json::{Value, json};

/// How Keycloak reaches its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseWiring {
    /// The embedded development database.
    Dev,
    /// PostgreSQL.
    Postgres {
        /// Host.
        host: String,
        /// Port.
        port: i32,
        /// Database name, or the Secret key holding it.
        database: Source,
        /// `sslmode`.
        ssl_mode: String,
        /// Secret with `username` and `password`.
        secret: String,
    },
}

/// A value given in the spec, or read from a Secret key at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Literal.
    Value(String),
    /// `secretKeyRef` (Secret, key).
    SecretKey(String, String),
}

impl DatabaseWiring {
    /// The wiring of a spec.
    pub fn of(database: &Database, namespace: &str) -> Result<Self, ReconcileError> {
        match (&database.postgres, &database.cloud_native_pg, database.dev) {
            (Some(pg), None, None) => Ok(DatabaseWiring::Postgres {
                host: pg.host.clone(),
                port: pg.port,
                database: Source::Value(pg.database.clone()),
                ssl_mode: pg.ssl_mode.as_str().to_owned(),
                secret: pg.credentials_secret.clone(),
            }),
            (None, Some(cnpg), None) => Ok(DatabaseWiring::Postgres {
                // CloudNativePG's conventions: the read-write Service and the
                // application user's Secret, named after the cluster.
                host: format!("{}-rw.{namespace}.svc", cnpg.cluster_name),
                port: 5432,
                database: Source::SecretKey(format!("{}-app", cnpg.cluster_name), "dbname".into()),
                ssl_mode: "require".into(),
                secret: format!("{}-app", cnpg.cluster_name),
            }),
            (None, None, Some(true)) => Ok(DatabaseWiring::Dev),
            _ => Err(invalid_spec(
                "InvalidDatabase",
                "set exactly one of database.postgres, database.cloudNativePG and database.dev: true",
            )),
        }
    }

    /// Whether this is the development database.
    pub fn is_dev(&self) -> bool {
        matches!(self, DatabaseWiring::Dev)
    }

    /// The Secret with the database credentials, if any.
    pub fn credentials_secret(&self) -> Option<&str> {
        match self {
            DatabaseWiring::Dev => None,
            DatabaseWiring::Postgres { secret, .. } => Some(secret),
        }
    }

    /// Checks that the credentials Secret exists with its keys, before a
    /// Deployment that cannot start is applied.
    pub fn check(&self) -> Result<(), ReconcileError> {
        let Some(secret) = self.credentials_secret() else {
            return Ok(());
        };
        let mut keys = vec!["username", "password"];
        if let DatabaseWiring::Postgres {
            database: Source::SecretKey(_, key),
            ..
        } = self
        {
            keys.push(key);
        }
        for key in keys {
            if keycloak_operator_sdk::secrets::read(secret, key)?.is_none() {
                return Err(transient(
                    "DatabaseSecretMissing",
                    format!(
                        "the database Secret {secret} does not exist or has no key {key:?}; Keycloak is not started without it"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The environment variables that configure the database.
    pub fn environment(&self) -> Vec<Value> {
        match self {
            DatabaseWiring::Dev => vec![json!({"name": "KC_DB", "value": "dev-file"})],
            DatabaseWiring::Postgres {
                host,
                port,
                database,
                ssl_mode,
                secret,
            } => {
                let database = match database {
                    Source::Value(name) => json!({"name": "KC_DB_URL_DATABASE", "value": name}),
                    Source::SecretKey(secret, key) => json!({
                        "name": "KC_DB_URL_DATABASE",
                        "valueFrom": {"secretKeyRef": {"name": secret, "key": key}},
                    }),
                };
                vec![
                    json!({"name": "KC_DB", "value": "postgres"}),
                    json!({"name": "KC_DB_URL_HOST", "value": host}),
                    json!({"name": "KC_DB_URL_PORT", "value": port.to_string()}),
                    database,
                    json!({"name": "KC_DB_URL_PROPERTIES", "value": format!("?sslmode={ssl_mode}")}),
                    json!({"name": "KC_DB_USERNAME", "valueFrom": {"secretKeyRef": {"name": secret, "key": "username"}}}),
                    json!({"name": "KC_DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}),
                ]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_native_pg_uses_the_clusters_secret_and_read_write_service() {
        let database: Database = serde_json::from_value(json!({"cloudNativePG": {"clusterName": "pg"}})).expect("spec");
        let wiring = DatabaseWiring::of(&database, "team").expect("wiring");
        let env = serde_json::to_string(&wiring.environment()).expect("json");
        assert!(env.contains("pg-rw.team.svc"));
        assert!(env.contains("\"pg-app\""));
        assert!(env.contains("dbname"));
        assert_eq!(wiring.credentials_secret(), Some("pg-app"));
    }

    #[test]
    fn exactly_one_database() {
        let two: Database =
            serde_json::from_value(json!({"dev": true, "cloudNativePG": {"clusterName": "pg"}})).expect("spec");
        assert!(DatabaseWiring::of(&two, "ns").is_err());
        let none = Database::default();
        assert!(DatabaseWiring::of(&none, "ns").is_err());
    }
}
