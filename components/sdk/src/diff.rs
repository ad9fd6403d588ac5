//! Comparing the fields a resource manages with what Keycloak holds.
//!
//! Only the fields present in the desired representation are managed; every
//! other field in Keycloak is left alone. Steady state must cost reads only,
//! so a write happens only when this comparison finds a difference.

use serde_json::Value;

/// The paths of the managed fields whose current value differs from the
/// desired one. Lists of plain values compare as sets, because Keycloak does
/// not keep the order of such lists (redirect URIs, web origins).
pub fn drifted_fields(desired: &Value, current: &Value) -> Vec<String> {
    let mut out = Vec::new();
    compare("", desired, current, &mut out);
    out
}

fn compare(path: &str, desired: &Value, current: &Value, out: &mut Vec<String>) {
    match (desired, current) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match have.get(key) {
                    Some(current) => compare(&child, value, current, out),
                    None if is_empty(value) => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(want), Value::Array(have)) if want.iter().chain(have).all(is_scalar) => {
            let mut want: Vec<String> = want.iter().map(Value::to_string).collect();
            let mut have: Vec<String> = have.iter().map(Value::to_string).collect();
            want.sort();
            want.dedup();
            have.sort();
            have.dedup();
            if want != have {
                out.push(path.to_owned());
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            if a.as_f64() != b.as_f64() {
                out.push(path.to_owned());
            }
        }
        (want, have) => {
            if want != have {
                out.push(path.to_owned());
            }
        }
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Object(_) | Value::Array(_))
}

/// An empty desired value matches a field Keycloak leaves out.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_managed_fields_count() {
        let desired = json!({"enabled": true, "attributes": {"a": "1"}});
        let current = json!({"enabled": true, "sslRequired": "none", "attributes": {"a": "1", "b": "2"}});
        assert!(drifted_fields(&desired, &current).is_empty());
    }

    #[test]
    fn reports_changed_and_missing_fields_by_path() {
        let desired = json!({"enabled": true, "displayName": "X", "attributes": {"a": "1"}});
        let current = json!({"enabled": false, "attributes": {"a": "2"}});
        assert_eq!(
            drifted_fields(&desired, &current),
            vec!["attributes.a", "displayName", "enabled"]
        );
    }

    #[test]
    fn lists_of_values_compare_as_sets_and_numbers_by_value() {
        let desired = json!({"uris": ["b", "a"], "lifespan": 300});
        let current = json!({"uris": ["a", "b"], "lifespan": 300.0});
        assert!(drifted_fields(&desired, &current).is_empty());
        let current = json!({"uris": ["a"], "lifespan": 300});
        assert_eq!(drifted_fields(&desired, &current), vec!["uris"]);
    }

    #[test]
    fn empty_desired_values_match_absent_fields() {
        let desired = json!({"attributes": {}, "description": ""});
        assert!(drifted_fields(&desired, &json!({})).is_empty());
    }
}
