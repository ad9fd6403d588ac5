//! The guide shows the template's code; this keeps the two the same, so the
//! example a reader copies is the one that builds and is tested.

#[test]
fn the_guide_shows_the_template_as_it_is() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let guide = std::fs::read_to_string(format!("{root}/docs/writing-components.md")).expect("read the guide");
    let code = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).expect("read lib.rs");
    assert!(
        guide.contains(&format!("```rust\n{code}```")),
        "docs/writing-components.md must show components/template/src/lib.rs verbatim in a ```rust block"
    );
}

#[test]
fn the_template_describes_its_kind_from_the_type() {
    use keycloak_operator_sdk::{KeycloakScope, Reconciler};
    let d = template_component::Template::describe();
    assert_eq!(
        (d.group.as_str(), d.kind.as_str(), d.plural.as_str()),
        ("example.com", "ExampleRole", "exampleroles")
    );
    assert_eq!(d.versions, vec!["v1alpha1".to_owned()]);
    assert_eq!(d.keycloak_scope, KeycloakScope::InRealm);
    assert!(
        d.crd
            .as_deref()
            .is_some_and(|crd| crd.contains("exampleroles.example.com"))
    );
}
