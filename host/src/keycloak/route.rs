//! Route templates of Keycloak admin requests: validation, scoping and URL
//! building.
//!
//! A component names a request by a template such as
//! `/realms/{realm}/clients/{id}` and passes the placeholder values apart.
//! The host encodes every value as exactly one path segment, so no value can
//! climb out of its place (`..`, `/`, `%2F`), and checks the realm segment
//! against the realm the resource may touch. The template doubles as the
//! metrics label, which keeps label cardinality bounded.

use serde_json::Value;

use crate::runtime::model::{KeycloakError, Method};

/// What a resource may touch in its Keycloak. Every scope may also read
/// `/serverinfo` (what the server supports), and none may write to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole admin API (the `Keycloak` resource itself).
    Instance,
    /// One realm it owns: the realm itself, everything under it, and its
    /// creation.
    OwnedRealm(String),
    /// Inside one realm, which it may read but not replace or delete.
    InRealm(String),
}

/// A checked request path: segments ready for the URL and the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRoute {
    /// The template, as the metrics label.
    pub template: String,
    /// The path under `/admin`, each value percent-encoded.
    pub path: String,
    /// The path's segments as Keycloak reads them (values decoded): what a
    /// policy on the request's meaning must look at, since a component may
    /// pass any literal as a value.
    pub segments: Vec<String>,
}

enum Segment<'a> {
    Literal(&'a str),
    Placeholder,
}

fn parse(template: &str) -> Result<Vec<Segment<'_>>, KeycloakError> {
    let invalid = |why: &str| KeycloakError::Invalid(format!("route {template:?} {why}"));
    let rest = template
        .strip_prefix('/')
        .ok_or_else(|| invalid("must start with '/'"))?;
    if template.len() > 256 {
        return Err(invalid("is too long"));
    }
    rest.split('/')
        .map(|segment| {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    return Ok(Segment::Placeholder);
                }
                return Err(invalid("has a malformed placeholder"));
            }
            if !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                Ok(Segment::Literal(segment))
            } else {
                Err(invalid(
                    "may contain only letters, digits, '-', '_' and {placeholders} between slashes",
                ))
            }
        })
        .collect()
}

/// Validates a request against the template rules and the scope, and builds
/// its path.
pub fn check(
    scope: &Scope,
    method: Method,
    template: &str,
    params: &[String],
    body: Option<&str>,
) -> Result<CheckedRoute, KeycloakError> {
    let segments = parse(template)?;
    let placeholders = segments.iter().filter(|s| matches!(s, Segment::Placeholder)).count();
    if placeholders != params.len() {
        return Err(KeycloakError::Invalid(format!(
            "route {template:?} has {placeholders} placeholders but {} values were given",
            params.len()
        )));
    }
    if let Some(empty) = params.iter().position(String::is_empty) {
        return Err(KeycloakError::Invalid(format!(
            "value {empty} of route {template:?} is empty"
        )));
    }
    // URL parsers (WHATWG, and so reqwest) read `%2E%2E` as `..` and resolve
    // it: encoded or not, a dot segment would climb out of its place and out
    // of the scope checked below.
    if let Some(dots) = params.iter().position(|v| v == "." || v == "..") {
        return Err(KeycloakError::Forbidden(format!(
            "{} {template}: value {dots} is {:?}, a dot segment that would leave its place in the path",
            method.as_str(),
            params[dots]
        )));
    }
    check_scope(scope, method, &segments, params, body, template)?;
    let mut path = String::new();
    let mut resolved = Vec::with_capacity(segments.len());
    let mut values = params.iter();
    for segment in &segments {
        path.push('/');
        match segment {
            Segment::Literal(s) => {
                path.push_str(s);
                resolved.push((*s).to_owned());
            }
            Segment::Placeholder => {
                let value = values.next().map(String::as_str).unwrap_or_default();
                path.push_str(&encode_segment(value));
                resolved.push(value.to_owned());
            }
        }
    }
    Ok(CheckedRoute {
        template: template.to_owned(),
        path,
        segments: resolved,
    })
}

fn check_scope(
    scope: &Scope,
    method: Method,
    segments: &[Segment<'_>],
    params: &[String],
    body: Option<&str>,
    template: &str,
) -> Result<(), KeycloakError> {
    let forbidden = |why: String| KeycloakError::Forbidden(format!("{} {template}: {why}", method.as_str()));
    // What the server supports (provider ids, mapper types, themes) is the
    // same for every realm and holds nothing of any realm: every resource
    // may read it, to check the names its spec gives, and none may send it
    // anything else.
    if let [Segment::Literal("serverinfo")] = segments {
        return if method == Method::Get {
            Ok(())
        } else {
            Err(forbidden("the server's information may only be read".into()))
        };
    }
    let realm = match scope {
        Scope::Instance => return Ok(()),
        Scope::OwnedRealm(realm) | Scope::InRealm(realm) => realm,
    };
    match segments {
        // Creating the realm itself: only the owning resource, only that name.
        [Segment::Literal("realms")] if matches!(scope, Scope::OwnedRealm(_)) && method == Method::Post => {
            let named = body
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .and_then(|v| v.get("realm").and_then(Value::as_str).map(str::to_owned));
            match named {
                Some(name) if &name == realm => Ok(()),
                other => Err(forbidden(format!(
                    "this resource may only create realm {realm:?}, not {:?}",
                    other.unwrap_or_default()
                ))),
            }
        }
        [Segment::Literal("realms"), Segment::Placeholder, rest @ ..] => {
            if &params[0] != realm {
                return Err(forbidden(format!(
                    "this resource may only touch realm {realm:?}, not {:?}",
                    params[0]
                )));
            }
            if rest.is_empty() && matches!(scope, Scope::InRealm(_)) && method != Method::Get {
                return Err(forbidden(format!(
                    "this resource may not replace or delete realm {realm:?}"
                )));
            }
            Ok(())
        }
        _ => Err(forbidden(format!(
            "this resource may only use routes under /realms/{{realm}} of realm {realm:?}"
        ))),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so the
/// value stays one segment whatever it holds. A dot is left as it is:
/// Keycloak refuses a path holding `%2E` ("Request path not normalized"),
/// and a dot is harmful only as a whole `.` or `..` segment, which
/// [`check`] refuses before encoding.
pub(crate) fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'~' | b'.') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned() -> Scope {
        Scope::OwnedRealm("shop".into())
    }

    fn params(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn builds_paths_with_each_value_encoded_as_one_segment() {
        let route = check(
            &owned(),
            Method::Get,
            "/realms/{realm}/clients/{id}",
            &params(&["shop", "a/../b c"]),
            None,
        )
        .expect("allowed");
        assert_eq!(route.path, "/realms/shop/clients/a%2F..%2Fb%20c");
        assert_eq!(route.template, "/realms/{realm}/clients/{id}");
    }

    #[test]
    fn dots_in_values_cannot_escape_and_dots_in_templates_are_refused() {
        let route = check(
            &owned(),
            Method::Get,
            "/realms/{realm}/users/{id}",
            &params(&["shop", "..."]),
            None,
        )
        .expect("three dots are a name, not a dot segment");
        assert_eq!(route.path, "/realms/shop/users/...");
        for dots in [".", ".."] {
            let climbing = check(
                &owned(),
                Method::Put,
                "/realms/{realm}/users/{a}/{b}/{c}",
                &params(&["shop", dots, dots, "master"]),
                None,
            );
            assert!(
                matches!(climbing, Err(KeycloakError::Forbidden(_))),
                "{dots}: {climbing:?}"
            );
        }
        for bad in [
            "/realms/{realm}/../master",
            "realms",
            "/realms//x",
            "/realms/{}",
            "/realms/%2e%2e",
        ] {
            assert!(
                matches!(
                    check(&Scope::Instance, Method::Get, bad, &[], None),
                    Err(KeycloakError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_realm_scope_cannot_reach_another_realm() {
        let err = check(&owned(), Method::Get, "/realms/{realm}", &params(&["master"]), None).expect_err("other realm");
        assert!(matches!(err, KeycloakError::Forbidden(_)));
        let err = check(&owned(), Method::Get, "/serverinfo/other", &[], None).expect_err("below serverinfo");
        assert!(matches!(err, KeycloakError::Forbidden(_)));
        let err = check(&owned(), Method::Get, "/realms", &[], None).expect_err("listing realms");
        assert!(matches!(err, KeycloakError::Forbidden(_)));
    }

    #[test]
    fn every_scope_may_read_the_server_info_and_none_may_write_it() {
        let scopes = [Scope::Instance, owned(), Scope::InRealm("shop".into())];
        for scope in &scopes {
            let route = check(scope, Method::Get, "/serverinfo", &[], None).expect("reading is allowed");
            assert_eq!(route.path, "/serverinfo");
            assert_eq!(route.segments, vec!["serverinfo".to_owned()]);
            for method in [Method::Post, Method::Put, Method::Delete] {
                let err = check(scope, method, "/serverinfo", &[], Some("{}")).expect_err("writing is refused");
                assert!(matches!(err, KeycloakError::Forbidden(_)), "{scope:?} {method:?}");
            }
        }
        // A value in its place is not the literal route.
        let err = check(&owned(), Method::Get, "/{info}", &params(&["serverinfo"]), None).expect_err("placeholder");
        assert!(matches!(err, KeycloakError::Forbidden(_)));
    }

    #[test]
    fn only_the_owned_realm_can_be_created() {
        assert!(check(&owned(), Method::Post, "/realms", &[], Some(r#"{"realm":"shop"}"#)).is_ok());
        assert!(check(&owned(), Method::Post, "/realms", &[], Some(r#"{"realm":"evil"}"#)).is_err());
        assert!(check(&owned(), Method::Post, "/realms", &[], None).is_err());
        let inside = Scope::InRealm("shop".into());
        assert!(check(&inside, Method::Post, "/realms", &[], Some(r#"{"realm":"shop"}"#)).is_err());
    }

    #[test]
    fn inside_a_realm_the_realm_itself_is_read_only() {
        let inside = Scope::InRealm("shop".into());
        assert!(check(&inside, Method::Get, "/realms/{realm}", &params(&["shop"]), None).is_ok());
        assert!(check(&inside, Method::Delete, "/realms/{realm}", &params(&["shop"]), None).is_err());
        assert!(
            check(
                &inside,
                Method::Post,
                "/realms/{realm}/clients",
                &params(&["shop"]),
                Some("{}")
            )
            .is_ok()
        );
    }

    #[test]
    fn placeholder_count_must_match() {
        assert!(matches!(
            check(&owned(), Method::Get, "/realms/{realm}", &[], None),
            Err(KeycloakError::Invalid(_))
        ));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn template_segment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("realms".to_owned()),
                Just("{realm}".to_owned()),
                Just("{id}".to_owned()),
                Just("users".to_owned()),
                Just("..".to_owned()),
                Just("%2e".to_owned()),
                Just(String::new()),
                "[a-z_-]{1,8}",
                "\\PC{0,6}",
            ]
        }

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("shop".to_owned()),
                Just("master".to_owned()),
                Just("..".to_owned()),
                Just(".".to_owned()),
                Just("%2e%2E".to_owned()),
                Just(".%2e".to_owned()),
                Just("a/b".to_owned()),
                Just("..\\master".to_owned()),
                Just("?q=1#f".to_owned()),
                "\\PC{0,12}",
            ]
        }

        fn method() -> impl Strategy<Value = Method> {
            prop_oneof![
                Just(Method::Get),
                Just(Method::Post),
                Just(Method::Put),
                Just(Method::Delete)
            ]
        }

        /// A template (most of them starting as the realm's routes do) and
        /// as many values as it has placeholders, most of the time.
        fn template_and_values() -> impl Strategy<Value = (String, Vec<String>)> {
            let start = prop_oneof![
                3 => Just("/realms/{realm}".to_owned()),
                1 => Just("/realms".to_owned()),
                1 => Just(String::new()),
            ];
            (
                start,
                proptest::collection::vec(template_segment(), 0..5),
                prop::bool::weighted(0.9),
            )
                .prop_flat_map(|(start, rest, matching)| {
                    let template = std::iter::once(start).chain(rest).collect::<Vec<_>>().join("/");
                    let placeholders = template.matches("{realm}").count() + template.matches("{id}").count();
                    let count = if matching { placeholders..placeholders + 1 } else { 0..6 };
                    (Just(template), proptest::collection::vec(value(), count))
                })
                .prop_map(|(template, mut values)| {
                    // The realm value is the scope's most of the time, so
                    // that the cases reach the rest of the path.
                    if template.starts_with("/realms/{realm}") && values.first().is_some_and(|v| v != "master") {
                        values[0] = "shop".to_owned();
                    }
                    (template, values)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(20_000))]

            /// Whatever the template and values, a request allowed for realm
            /// `shop` reaches, once the URL parser has normalised it, a path
            /// under `/admin/realms/shop` (or creates that realm, or reads
            /// the server's information), segment for segment as checked.
            #[test]
            fn no_template_or_value_leaves_the_realm(
                (template, values) in template_and_values(),
                method in method(),
                inside in any::<bool>(),
            ) {
                let scope = if inside { Scope::InRealm("shop".into()) } else { Scope::OwnedRealm("shop".into()) };
                let body = Some(r#"{"realm":"shop"}"#);
                let Ok(route) = check(&scope, method, &template, &values, body) else {
                    return Ok(());
                };
                let url = reqwest::Url::parse(&format!("http://keycloak:8080/admin{}", route.path))
                    .map_err(|e| TestCaseError::fail(format!("{}: {e}", route.path)))?;
                prop_assert_eq!(url.path(), format!("/admin{}", route.path), "the parser rewrote the path");
                let reached: Vec<&str> = url.path().split('/').skip(1).collect();
                prop_assert_eq!(reached.len(), route.segments.len() + 1);
                match reached.as_slice() {
                    ["admin", "realms"] => prop_assert!(method == Method::Post && !inside),
                    ["admin", "realms", "shop", ..] => {}
                    ["admin", "serverinfo"] => prop_assert!(method == Method::Get),
                    other => prop_assert!(false, "{template} {values:?} reached {other:?}"),
                }
            }
        }
    }
}
