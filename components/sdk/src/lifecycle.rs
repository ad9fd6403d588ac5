//! The life of a Keycloak object a resource owns, the same for every kind:
//!
//! 1. **find** it; when it is absent, **create** it — and when Keycloak
//!    answers 409 (it appeared meanwhile: another resource, or an earlier
//!    attempt that timed out), find it again and judge it like any existing
//!    object (with [`Lifecycle::expecting_new`], create first and find only
//!    on 409);
//! 2. **judge** an existing object by its ownership attributes: ours, go on;
//!    another resource's, `Conflict` (never touched); nobody's, taken over
//!    only with `adoptExisting`, else `AdoptionRequired`;
//! 3. on deletion, apply the policy: **delete** it when ours and the policy
//!    says so, **release** it (ownership attributes emptied) when it is
//!    retained, and leave alone what is not ours.
//!
//! A component supplies how to find, create, delete and release its kind of
//! object; the lifecycle gives the decisions, the errors and the Events,
//! with the same reasons for every kind. An author in another language
//! follows the same steps (docs/extensions.md).

use serde_json::Value;

use crate::error::{permanent, transient};
use crate::ownership::{Owner, Ownership};
use crate::{Finalized, ReconcileError, Response};

/// One kind of owned object, for one resource.
pub struct Lifecycle<'a> {
    noun: &'a str,
    label: String,
    owner: &'a Owner,
    adopt_existing: bool,
    expect_new: bool,
}

/// What [`Lifecycle::establish`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Established {
    /// It did not exist and was created.
    Created(Value),
    /// It existed, unowned, and is taken over (`adoptExisting`).
    Adopted(Value),
    /// It existed and this resource owns it.
    Owned(Value),
}

impl Established {
    /// The object as Keycloak holds it.
    pub fn object(&self) -> &Value {
        match self {
            Established::Created(o) | Established::Adopted(o) | Established::Owned(o) => o,
        }
    }
}

impl<'a> Lifecycle<'a> {
    /// The lifecycle of an object called `label` in messages ("realm shop",
    /// "client app of realm shop"); `noun` ("Realm", "Client") prefixes the
    /// Event reasons (`RealmCreated`, `ClientDeleted`, ...).
    pub fn new(noun: &'a str, label: impl Into<String>, owner: &'a Owner) -> Self {
        Lifecycle {
            noun,
            label: label.into(),
            owner,
            adopt_existing: false,
            expect_new: false,
        }
    }

    /// Whether an existing unowned object may be taken over.
    pub fn adopting(mut self, adopt_existing: bool) -> Self {
        self.adopt_existing = adopt_existing;
        self
    }

    /// Whether the object most likely does not exist yet: the resource has
    /// never recorded one. [`Lifecycle::establish`] then creates first and
    /// finds only when Keycloak answers 409, which saves a read for every
    /// new resource and decides the same: an object that exists (made by
    /// hand, by another resource, or by an attempt whose answer was lost) is
    /// found and judged all the same.
    pub fn expecting_new(mut self, expect_new: bool) -> Self {
        self.expect_new = expect_new;
        self
    }

    /// Finds the object, creates it when absent (`create` answers `None` on
    /// 409), and judges its ownership.
    pub fn establish(
        &self,
        mut find: impl FnMut() -> Result<Option<Value>, ReconcileError>,
        create: impl FnOnce() -> Result<Option<Value>, ReconcileError>,
    ) -> Result<Established, ReconcileError> {
        if !self.expect_new
            && let Some(existing) = find()?
        {
            return self.judge(existing);
        }
        if let Some(created) = create()? {
            return Ok(Established::Created(created));
        }
        let existing = find()?.ok_or_else(|| {
            transient(
                &format!("{}NotFound", self.noun),
                format!("{} is neither creatable nor readable", self.label),
            )
        })?;
        self.judge(existing)
    }

    /// Whether an existing object may be managed by this resource.
    pub fn judge(&self, existing: Value) -> Result<Established, ReconcileError> {
        match self.owner.check(existing.get("attributes")) {
            Ownership::Ours => Ok(Established::Owned(existing)),
            Ownership::Other(other) => Err(permanent(
                "Conflict",
                format!("{} is already managed by {other}; it is left untouched", self.label),
            )),
            Ownership::Unowned if !self.adopt_existing => Err(permanent(
                "AdoptionRequired",
                format!(
                    "{} already exists in Keycloak and no resource manages it; \
                     set spec.adoptExisting to true to take it over",
                    self.label
                ),
            )),
            Ownership::Unowned => Ok(Established::Adopted(existing)),
        }
    }

    /// The Event of a creation or an adoption, added to `response`.
    pub fn announce(&self, established: &Established, response: Response) -> Response {
        match established {
            Established::Created(_) => response.event(
                &format!("{}Created", self.noun),
                "Create",
                format!("Created {}", self.label),
            ),
            Established::Adopted(_) => response.event(
                &format!("{}Adopted", self.noun),
                "Adopt",
                format!("Adopted existing {}", self.label),
            ),
            Established::Owned(_) => response,
        }
    }

    /// Applies the deletion policy to `current` (the object as found, `None`
    /// when it is gone): `delete` when ours and not retained, `release` when
    /// ours and retained, nothing otherwise.
    pub fn end(
        &self,
        current: Option<Value>,
        retain: bool,
        delete: impl FnOnce(&Value) -> Result<(), ReconcileError>,
        release: impl FnOnce(&Value) -> Result<(), ReconcileError>,
    ) -> Result<Finalized, ReconcileError> {
        let noun = self.noun;
        let Some(current) = current else {
            return Ok(Finalized::default().event(
                &format!("{noun}AlreadyGone"),
                "Delete",
                format!("{} no longer exists", capitalised(&self.label)),
            ));
        };
        match (self.owner.check(current.get("attributes")), retain) {
            (Ownership::Ours, false) => {
                delete(&current)?;
                Ok(Finalized::default().event(&format!("{noun}Deleted"), "Delete", format!("Deleted {}", self.label)))
            }
            (Ownership::Ours, true) => {
                release(&current)?;
                Ok(Finalized::default().event(
                    &format!("{noun}Retained"),
                    "Retain",
                    format!(
                        "{} and its data stay in Keycloak (deletionPolicy: Retain)",
                        capitalised(&self.label)
                    ),
                ))
            }
            (Ownership::Other(other), _) => Ok(Finalized::default().warning(
                &format!("{noun}NotOwned"),
                "Delete",
                format!("{} is managed by {other}; left untouched", capitalised(&self.label)),
            )),
            (Ownership::Unowned, _) => Ok(Finalized::default().event(
                &format!("{noun}NotOwned"),
                "Delete",
                format!(
                    "{} is not managed by this resource; left untouched",
                    capitalised(&self.label)
                ),
            )),
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner(uid: &str) -> Owner {
        Owner {
            uid: uid.into(),
            namespace: "shop".into(),
            name: "storefront".into(),
            kind: "KeycloakRealm".into(),
        }
    }

    fn error_reason(error: ReconcileError) -> String {
        match error {
            ReconcileError::Transient(d) | ReconcileError::Permanent(d) | ReconcileError::InvalidSpec(d) => d.reason,
        }
    }

    #[test]
    fn a_missing_object_is_created_and_a_409_is_judged_like_an_existing_one() {
        let me = owner("u1");
        let lifecycle = Lifecycle::new("Realm", "realm shop", &me);
        let created = lifecycle
            .establish(|| Ok(None), || Ok(Some(json!({"realm": "shop"}))))
            .expect("created");
        assert_eq!(created, Established::Created(json!({"realm": "shop"})));
        // 409, and it belongs to someone else
        let theirs = json!({"attributes": owner("u2").attributes()});
        let mut finds = vec![Some(theirs), None];
        let conflict = lifecycle
            .establish(|| Ok(finds.pop().flatten()), || Ok(None))
            .expect_err("someone else's");
        assert_eq!(error_reason(conflict), "Conflict");
    }

    #[test]
    fn a_new_object_is_created_without_a_read_and_found_only_on_409() {
        let me = owner("u1");
        let lifecycle = Lifecycle::new("Client", "client app", &me).expecting_new(true);
        let created = lifecycle
            .establish(|| panic!("no read before the create"), || Ok(Some(json!({"id": "1"}))))
            .expect("created");
        assert_eq!(created, Established::Created(json!({"id": "1"})));
        // 409: an earlier attempt of ours whose answer was lost is ours...
        let ours = json!({"attributes": me.attributes()});
        let found = lifecycle
            .establish(|| Ok(Some(ours.clone())), || Ok(None))
            .expect("ours");
        assert_eq!(found, Established::Owned(ours));
        // ...one made by hand needs adoption, as when found first
        let unowned = json!({"attributes": {}});
        let refused = lifecycle
            .establish(|| Ok(Some(unowned.clone())), || Ok(None))
            .expect_err("made by hand");
        assert_eq!(error_reason(refused), "AdoptionRequired");
    }

    #[test]
    fn an_unowned_object_is_adopted_only_on_request() {
        let me = owner("u1");
        let unowned = json!({"attributes": {}});
        let refused = Lifecycle::new("Client", "client app", &me)
            .judge(unowned.clone())
            .expect_err("adoption is explicit");
        assert_eq!(error_reason(refused), "AdoptionRequired");
        let adopted = Lifecycle::new("Client", "client app", &me)
            .adopting(true)
            .judge(unowned)
            .expect("adopted");
        assert!(matches!(adopted, Established::Adopted(_)));
    }

    #[test]
    fn deletion_follows_ownership_and_policy() {
        let me = owner("u1");
        let lifecycle = Lifecycle::new("Realm", "realm shop", &me);
        let ours = json!({"attributes": me.attributes()});
        let mut deleted = false;
        lifecycle
            .end(
                Some(ours.clone()),
                false,
                |_| {
                    deleted = true;
                    Ok(())
                },
                |_| panic!("not retained"),
            )
            .expect("deleted");
        assert!(deleted);
        let mut released = false;
        lifecycle
            .end(
                Some(ours),
                true,
                |_| panic!("retained"),
                |_| {
                    released = true;
                    Ok(())
                },
            )
            .expect("released");
        assert!(released);
        let theirs = json!({"attributes": owner("u2").attributes()});
        lifecycle
            .end(Some(theirs), false, |_| panic!("not ours"), |_| panic!("not ours"))
            .expect("left alone");
        lifecycle
            .end(None, false, |_| panic!("gone"), |_| panic!("gone"))
            .expect("already gone");
    }
}
