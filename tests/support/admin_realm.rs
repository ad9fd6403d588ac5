//! One realm of the bed's Keycloak, read and changed through the admin API:
//! what a story checks Keycloak with, independently of the operator.

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::testbed::{KeycloakAdmin, http_client};

/// A realm, addressed by name, through an admin session.
pub struct AdminRealm<'a> {
    /// The admin session.
    pub admin: &'a KeycloakAdmin,
    /// The realm's name.
    pub name: String,
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item[field].as_str().map(str::to_owned))
        .collect()
}

impl AdminRealm<'_> {
    /// `GET /realms/{name}{path}`, or null when it is not found.
    pub async fn get(&self, path: &str) -> Result<Value> {
        Ok(self
            .admin
            .get_json(&format!("/realms/{}{path}", self.name))
            .await?
            .unwrap_or(Value::Null))
    }

    /// The status Keycloak answers a `GET` of `path` with.
    pub async fn status_of(&self, path: &str) -> Result<StatusCode> {
        Ok(self
            .admin
            .request(Method::GET, &format!("/realms/{}{path}", self.name), None)
            .await?
            .status())
    }

    /// A write that must succeed.
    pub async fn send(&self, method: Method, path: &str, body: Value) -> Result<()> {
        let response = self
            .admin
            .request(method.clone(), &format!("/realms/{}{path}", self.name), Some(&body))
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{method} {path}: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
        Ok(())
    }

    /// The id of the item of the list at `path?query` whose `field` is `value`.
    pub async fn id_of(&self, path: &str, query: &str, field: &str, value: &str) -> Result<String> {
        let list = self.get(&format!("{path}?{query}")).await?;
        list.as_array()
            .and_then(|l| l.iter().find(|i| i[field] == value))
            .and_then(|i| i["id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no {value} under {path}"))
    }

    /// The user named `username`, as Keycloak represents it.
    pub async fn user(&self, username: &str) -> Result<Option<Value>> {
        let list = self.get(&format!("/users?username={username}&exact=true")).await?;
        Ok(list.as_array().and_then(|l| l.first()).cloned())
    }

    /// The id of the user named `username`.
    pub async fn user_id(&self, username: &str) -> Result<Option<String>> {
        Ok(self
            .user(username)
            .await?
            .and_then(|u| u["id"].as_str().map(str::to_owned)))
    }

    /// The realm roles mapped to a user directly, sorted.
    pub async fn realm_roles_of(&self, user_id: &str) -> Result<Vec<String>> {
        let mut roles = names(
            &self.get(&format!("/users/{user_id}/role-mappings/realm")).await?,
            "name",
        );
        roles.sort();
        Ok(roles)
    }

    /// The paths of the groups a user is in.
    pub async fn group_paths_of(&self, user_id: &str) -> Result<Vec<String>> {
        Ok(names(&self.get(&format!("/users/{user_id}/groups")).await?, "path"))
    }

    /// The id of the realm's `realm-management` client.
    pub async fn management(&self) -> Result<String> {
        self.id_of("/clients", "clientId=realm-management", "clientId", "realm-management")
            .await
    }

    /// A role of `realm-management`.
    pub async fn management_role(&self, name: &str) -> Result<Value> {
        let management = self.management().await?;
        self.get(&format!("/clients/{management}/roles/{name}")).await
    }

    /// The `realm-management` roles a user holds, through every composite
    /// and group.
    pub async fn administration_of(&self, username: &str) -> Result<Vec<String>> {
        let Some(user) = self.user_id(username).await? else {
            return Ok(Vec::new());
        };
        let management = self.management().await?;
        let effective = self
            .get(&format!("/users/{user}/role-mappings/clients/{management}/composite"))
            .await?;
        Ok(names(&effective, "name"))
    }

    /// The password grant of the realm's own `admin-cli` client, as a user
    /// signing in with a script would.
    pub async fn password_grant(&self, username: &str, password: &str) -> Result<(StatusCode, Value)> {
        let response = http_client()
            .post(format!(
                "{}/realms/{}/protocol/openid-connect/token",
                self.admin.base_url(),
                self.name
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }
}
