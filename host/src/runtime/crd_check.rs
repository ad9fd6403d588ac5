//! What a kind's CRD must declare for the host to report on its resources.

/// The host reports every outcome in the status (see
/// `controller::status`), so a CRD the component ships must let it: each
/// version needs a status subresource whose schema declares the fields the
/// host writes, or the API server refuses every status write and the
/// resources look untouched.
pub(super) fn check_crd(text: &str) -> Result<(), String> {
    const HOST_FIELDS: [&str; 3] = ["conditions", "observedGeneration", "reconciledBy"];
    let crd: serde_json::Value =
        serde_yaml::from_str(text).map_err(|error| format!("its CRD does not parse: {error}"))?;
    for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
        let name = version["name"].as_str().unwrap_or("?");
        if version["subresources"]["status"].is_null() {
            return Err(format!(
                "its CRD gives version {name} no status subresource, so no condition could be reported (with kube's derive: #[kube(status = \"keycloak_operator_sdk::HostStatus\")])"
            ));
        }
        let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"];
        if status["x-kubernetes-preserve-unknown-fields"] == true {
            continue;
        }
        let undeclared: Vec<&str> = HOST_FIELDS
            .into_iter()
            .filter(|field| status["properties"][field].is_null())
            .collect();
        if !undeclared.is_empty() {
            return Err(format!(
                "its CRD's status schema (version {name}) does not declare {}, which the host writes (keycloak_operator_sdk::HostStatus declares them)",
                undeclared.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_crd;

    const STATUS: &str = r#"{"properties": {"conditions": {}, "observedGeneration": {}, "reconciledBy": {}}}"#;

    fn crd(status_subresource: bool, status_schema: &str) -> String {
        let subresources = if status_subresource { r#"{"status": {}}"# } else { "{}" };
        format!(
            r#"{{"spec": {{"versions": [{{"name": "v1", "subresources": {subresources},
                "schema": {{"openAPIV3Schema": {{"properties": {{"status": {status_schema}}}}}}}}}]}}}}"#
        )
    }

    #[test]
    fn a_crd_declaring_the_host_fields_passes() {
        assert_eq!(check_crd(&crd(true, STATUS)), Ok(()));
        assert_eq!(
            check_crd(&crd(true, r#"{"x-kubernetes-preserve-unknown-fields": true}"#)),
            Ok(())
        );
    }

    #[test]
    fn a_version_without_status_is_named() {
        let error = check_crd(&crd(false, STATUS)).expect_err("no status subresource");
        assert!(error.contains("version v1 no status subresource"), "{error}");
    }

    #[test]
    fn an_undeclared_host_field_is_named() {
        let error = check_crd(&crd(true, r#"{"properties": {"conditions": {}}}"#)).expect_err("fields missing");
        assert!(
            error.contains("does not declare observedGeneration, reconciledBy"),
            "{error}"
        );
    }

    #[test]
    fn an_unparsable_crd_is_refused() {
        assert!(check_crd("spec: [").expect_err("not YAML").contains("does not parse"));
    }
}
