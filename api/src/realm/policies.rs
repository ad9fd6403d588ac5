//! Policies of a realm that are fields of Keycloak's RealmRepresentation:
//! passwords, one-time passwords, brute-force detection, sessions and
//! tokens, login events, localization, themes and browser security headers.
//! Every field is optional; an unset one is not managed.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The fields of Keycloak's RealmRepresentation a policy sets, with their
/// values: those set, in Keycloak's names.
pub type RealmFields = Vec<(&'static str, Value)>;

fn push<T: Serialize>(fields: &mut RealmFields, name: &'static str, value: &Option<T>) {
    if let Some(value) = value {
        fields.push((name, json!(value)));
    }
}

/// One rule of the password policy, such as `length` with value `12`, or
/// `notUsername` without one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordRule {
    /// The rule's id, as Keycloak names it: `length`, `maxLength`, `digits`,
    /// `lowerCase`, `upperCase`, `specialChars`, `notUsername`, `notEmail`,
    /// `passwordHistory`, `forceExpiredPasswordChange`, `hashIterations`,
    /// `hashAlgorithm`, `regexPattern`, `passwordBlacklist`...
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z][A-Za-z0-9]*$"))]
    #[serde(rename = "type")]
    pub rule: String,
    /// Its value, for rules that take one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    #[x_kube(validation = Rule::new("!self.contains(')')").message("a password rule's value cannot hold ')'"))]
    pub value: Option<String>,
}

/// Renders rules as Keycloak's policy string: `length(12) and notUsername`.
pub fn password_policy(rules: &[PasswordRule]) -> String {
    rules
        .iter()
        .map(|rule| match &rule.value {
            Some(value) => format!("{}({value})", rule.rule),
            None => rule.rule.clone(),
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The one-time password policy (what authenticator apps are set up with).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtpPolicy {
    /// `totp` (time-based) or `hotp` (counter-based).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub kind: Option<OtpType>,
    /// The hash algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<OtpAlgorithm>,
    /// Digits of a code: 6 or 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 6, max = 8))]
    pub digits: Option<i32>,
    /// How long a time-based code is valid, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub period_seconds: Option<i32>,
    /// How many codes before or after the expected one are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub look_ahead_window: Option<i32>,
    /// Whether a code may be used more than once within its period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_reusable: Option<bool>,
}

/// Kinds of one-time passwords.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OtpType {
    /// Time-based.
    Totp,
    /// Counter-based.
    Hotp,
}

/// Hash algorithms of one-time passwords.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OtpAlgorithm {
    /// SHA-1 (what most authenticator apps expect).
    HmacSHA1,
    /// SHA-256.
    HmacSHA256,
    /// SHA-512.
    HmacSHA512,
}

impl OtpPolicy {
    fn fields(&self, fields: &mut RealmFields) {
        push(fields, "otpPolicyType", &self.kind);
        push(fields, "otpPolicyAlgorithm", &self.algorithm);
        push(fields, "otpPolicyDigits", &self.digits);
        push(fields, "otpPolicyPeriod", &self.period_seconds);
        push(fields, "otpPolicyLookAheadWindow", &self.look_ahead_window);
        push(fields, "otpPolicyCodeReusable", &self.code_reusable);
    }
}

/// How brute-force login attempts are locked out (when
/// `settings.bruteForceProtected` is on).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BruteForce {
    /// Lock a user out for good (until an admin unlocks them) rather than
    /// for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent_lockout: Option<bool>,
    /// Temporary lockouts before a permanent one (0: never permanent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_temporary_lockouts: Option<i32>,
    /// Failed logins before a lockout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_login_failures: Option<i32>,
    /// How much each lockout adds to the wait, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub wait_increment_seconds: Option<i32>,
    /// The longest wait, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_wait_seconds: Option<i32>,
    /// How long after which failures are forgotten, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub failure_reset_seconds: Option<i32>,
    /// Logins closer together than this are "quick", in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub quick_login_check_milliseconds: Option<i64>,
    /// The wait after a quick failed login, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub minimum_quick_login_wait_seconds: Option<i32>,
}

impl BruteForce {
    fn fields(&self, fields: &mut RealmFields) {
        push(fields, "permanentLockout", &self.permanent_lockout);
        push(fields, "maxTemporaryLockouts", &self.max_temporary_lockouts);
        push(fields, "failureFactor", &self.max_login_failures);
        push(fields, "waitIncrementSeconds", &self.wait_increment_seconds);
        push(fields, "maxFailureWaitSeconds", &self.max_wait_seconds);
        push(fields, "maxDeltaTimeSeconds", &self.failure_reset_seconds);
        push(
            fields,
            "quickLoginCheckMilliSeconds",
            &self.quick_login_check_milliseconds,
        );
        push(
            fields,
            "minimumQuickLoginWaitSeconds",
            &self.minimum_quick_login_wait_seconds,
        );
    }
}

/// Lifespans of sessions and tokens beyond those in `settings`, in seconds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sessions {
    /// Idle time after which an offline session expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub offline_session_idle_timeout_seconds: Option<i32>,
    /// Whether offline sessions have a longest life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_session_max_lifespan_enabled: Option<bool>,
    /// Longest life of an offline session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub offline_session_max_lifespan_seconds: Option<i32>,
    /// Idle time after which a client session expires (0: the SSO session's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub client_session_idle_timeout_seconds: Option<i32>,
    /// Longest life of a client session (0: the SSO session's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub client_session_max_lifespan_seconds: Option<i32>,
    /// Lifetime of an authorization code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub access_code_lifespan_seconds: Option<i32>,
    /// Time a user has to complete a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub login_timeout_seconds: Option<i32>,
    /// Time a user has to complete an action asked of them (update
    /// password, verify email...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub user_action_timeout_seconds: Option<i32>,
    /// Whether a refresh token can be used once only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_refresh_token: Option<bool>,
    /// How often a refresh token may be reused when `revokeRefreshToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub refresh_token_max_reuse: Option<i32>,
    /// Algorithm signing the realm's tokens, such as `RS256` or `ES256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    pub default_signature_algorithm: Option<String>,
}

impl Sessions {
    fn fields(&self, fields: &mut RealmFields) {
        push(
            fields,
            "offlineSessionIdleTimeout",
            &self.offline_session_idle_timeout_seconds,
        );
        push(
            fields,
            "offlineSessionMaxLifespanEnabled",
            &self.offline_session_max_lifespan_enabled,
        );
        push(
            fields,
            "offlineSessionMaxLifespan",
            &self.offline_session_max_lifespan_seconds,
        );
        push(
            fields,
            "clientSessionIdleTimeout",
            &self.client_session_idle_timeout_seconds,
        );
        push(
            fields,
            "clientSessionMaxLifespan",
            &self.client_session_max_lifespan_seconds,
        );
        push(fields, "accessCodeLifespan", &self.access_code_lifespan_seconds);
        push(fields, "accessCodeLifespanLogin", &self.login_timeout_seconds);
        push(
            fields,
            "accessCodeLifespanUserAction",
            &self.user_action_timeout_seconds,
        );
        push(fields, "revokeRefreshToken", &self.revoke_refresh_token);
        push(fields, "refreshTokenMaxReuse", &self.refresh_token_max_reuse);
        push(fields, "defaultSignatureAlgorithm", &self.default_signature_algorithm);
    }
}

/// Which user events (logins, errors...) Keycloak records and sends to its
/// listeners. Admin events are not here: the operator's drift watch keeps
/// them on wherever it watches.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Events {
    /// Whether user events are saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long saved user events are kept, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub expiration_seconds: Option<i64>,
    /// Event listeners (`jboss-logging`, or a provider of your own). Exact
    /// when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 255)), extend("x-kubernetes-list-type" = "set"))]
    pub listeners: Option<Vec<String>>,
    /// The user event types saved (`LOGIN`, `LOGIN_ERROR`, `LOGOUT`...);
    /// exact when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200), inner(length(min = 1, max = 64)), extend("x-kubernetes-list-type" = "set"))]
    pub types: Option<Vec<String>>,
    /// Whether admin events include the representation of what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_event_details: Option<bool>,
}

impl Events {
    fn fields(&self, fields: &mut RealmFields) {
        push(fields, "eventsEnabled", &self.enabled);
        push(fields, "eventsExpiration", &self.expiration_seconds);
        push(fields, "eventsListeners", &self.listeners);
        push(fields, "enabledEventTypes", &self.types);
        push(fields, "adminEventsDetailsEnabled", &self.admin_event_details);
    }
}

/// The languages of the login pages and emails.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.defaultLocale) || !has(self.supportedLocales) || self.defaultLocale in self.supportedLocales").message("defaultLocale must be one of supportedLocales").field_path(".defaultLocale"))]
pub struct Localization {
    /// Whether users can choose among the supported locales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The locales offered (`en`, `de`, `pt-BR`...); exact when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100), inner(length(min = 2, max = 16)), extend("x-kubernetes-list-type" = "set"))]
    pub supported_locales: Option<Vec<String>>,
    /// The locale used when the user chose none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 16))]
    pub default_locale: Option<String>,
}

impl Localization {
    fn fields(&self, fields: &mut RealmFields) {
        push(fields, "internationalizationEnabled", &self.enabled);
        push(fields, "supportedLocales", &self.supported_locales);
        push(fields, "defaultLocale", &self.default_locale);
    }
}

/// Themes of the realm's pages and emails, by name (`keycloak`,
/// `keycloak.v2`, or a theme installed in Keycloak). The login theme is
/// `settings.loginTheme`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Themes {
    /// The account console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub account: Option<String>,
    /// The admin console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub admin: Option<String>,
    /// Emails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub email: Option<String>,
}

impl Themes {
    fn fields(&self, fields: &mut RealmFields) {
        push(fields, "accountTheme", &self.account);
        push(fields, "adminTheme", &self.admin);
        push(fields, "emailTheme", &self.email);
    }
}

/// The policies block of `settings`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    /// The password policy, rule by rule; exact when set (`[]` allows any
    /// password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub password_policy: Option<Vec<PasswordRule>>,
    /// One-time passwords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_policy: Option<OtpPolicy>,
    /// Brute-force lockouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brute_force: Option<BruteForce>,
    /// Sessions and tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Sessions>,
    /// User events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Events>,
    /// Languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localization: Option<Localization>,
    /// Themes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub themes: Option<Themes>,
    /// Browser security headers (`contentSecurityPolicy`, `xFrameOptions`,
    /// `strictTransportSecurity`...); only the headers listed are managed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub browser_security_headers: BTreeMap<String, String>,
}

impl Policies {
    /// The realm fields these policies set, in Keycloak's names.
    pub fn realm_fields(&self) -> RealmFields {
        let mut fields = RealmFields::new();
        if let Some(rules) = &self.password_policy {
            fields.push(("passwordPolicy", json!(password_policy(rules))));
        }
        if let Some(otp) = &self.otp_policy {
            otp.fields(&mut fields);
        }
        if let Some(brute_force) = &self.brute_force {
            brute_force.fields(&mut fields);
        }
        if let Some(sessions) = &self.sessions {
            sessions.fields(&mut fields);
        }
        if let Some(events) = &self.events {
            events.fields(&mut fields);
        }
        if let Some(localization) = &self.localization {
            localization.fields(&mut fields);
        }
        if let Some(themes) = &self.themes {
            themes.fields(&mut fields);
        }
        if !self.browser_security_headers.is_empty() {
            fields.push(("browserSecurityHeaders", json!(self.browser_security_headers)));
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_map_to_keycloaks_fields_and_the_password_rules_to_its_string() {
        let policies: Policies = serde_json::from_value(json!({
            "passwordPolicy": [{"type": "length", "value": "12"}, {"type": "notUsername"}],
            "otpPolicy": {"type": "totp", "algorithm": "HmacSHA256", "digits": 8},
            "bruteForce": {"maxLoginFailures": 5},
            "events": {"enabled": true, "types": ["LOGIN"]},
            "browserSecurityHeaders": {"xFrameOptions": "DENY"},
        }))
        .expect("valid policies");
        let fields: BTreeMap<&str, Value> = policies.realm_fields().into_iter().collect();
        assert_eq!(fields["passwordPolicy"], "length(12) and notUsername");
        assert_eq!(fields["otpPolicyType"], "totp");
        assert_eq!(fields["otpPolicyAlgorithm"], "HmacSHA256");
        assert_eq!(fields["otpPolicyDigits"], 8);
        assert_eq!(fields["failureFactor"], 5);
        assert_eq!(fields["enabledEventTypes"], json!(["LOGIN"]));
        assert_eq!(fields["browserSecurityHeaders"], json!({"xFrameOptions": "DENY"}));
        assert!(!fields.contains_key("eventsListeners"), "unset: not managed");
        assert_eq!(password_policy(&[]), "");
    }
}
