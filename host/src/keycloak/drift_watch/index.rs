//! Which resources recorded which Keycloak paths, in one realm.

use std::collections::{HashMap, HashSet};

use crate::capability::Nudge;

/// Which resources recorded which paths, in one realm.
#[derive(Default)]
pub(super) struct PathIndex {
    by_path: HashMap<String, HashSet<Nudge>>,
    by_resource: HashMap<Nudge, Vec<String>>,
}

impl PathIndex {
    pub(super) fn is_empty(&self) -> bool {
        self.by_resource.is_empty()
    }

    pub(super) fn forget(&mut self, who: &Nudge) {
        for path in self.by_resource.remove(who).unwrap_or_default() {
            if let Some(watchers) = self.by_path.get_mut(&path) {
                watchers.remove(who);
                if watchers.is_empty() {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    pub(super) fn record(&mut self, who: Nudge, paths: Vec<String>) {
        self.forget(&who);
        for path in &paths {
            self.by_path.entry(path.clone()).or_default().insert(who.clone());
        }
        self.by_resource.insert(who, paths);
    }

    /// The resources an event on `path` concerns: those that recorded the
    /// path or a path above it. The realm itself (`""`) is only concerned
    /// by events on the realm, or every resource would be.
    pub(super) fn concerned(&self, path: &str) -> HashSet<Nudge> {
        let path = path.trim_matches('/');
        let mut found = HashSet::new();
        let mut add = |prefix: &str| {
            if let Some(watchers) = self.by_path.get(prefix) {
                found.extend(watchers.iter().cloned());
            }
        };
        if path.is_empty() {
            add("");
            return found;
        }
        for (end, _) in path.match_indices('/') {
            add(&path[..end]);
        }
        add(path);
        found
    }

    pub(super) fn everyone(&self) -> HashSet<Nudge> {
        self.by_resource.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str) -> Nudge {
        Nudge::client(name)
    }

    fn watch_with(records: &[(&str, &[&str])]) -> PathIndex {
        let mut index = PathIndex::default();
        for (name, paths) in records {
            index.record(who(name), paths.iter().map(|p| (*p).to_owned()).collect());
        }
        index
    }

    #[test]
    fn an_event_concerns_the_resources_that_recorded_its_path_or_one_above() {
        let watch = watch_with(&[
            ("billing", &["clients/1", "users/9/role-mappings"]),
            ("shop", &["clients/2"]),
            ("realm", &[""]),
        ]);
        let names = |path: &str| {
            let mut names: Vec<String> = watch.concerned(path).into_iter().map(|n| n.key.name).collect();
            names.sort();
            names
        };
        assert_eq!(names("clients/1"), ["billing"]);
        assert_eq!(names("clients/1/protocol-mappers/models/7"), ["billing"]);
        assert_eq!(names("users/9/role-mappings/realm"), ["billing"]);
        assert_eq!(
            names("clients/22"),
            Vec::<String>::new(),
            "a prefix of the id is not the id"
        );
        assert_eq!(names("clients"), Vec::<String>::new());
        assert_eq!(names(""), ["realm"], "only the realm's own events reach the realm");
        assert_eq!(names("clients/2"), ["shop"]);
    }

    #[test]
    fn a_new_record_replaces_the_old_and_forgetting_leaves_nothing_behind() {
        let mut watch = watch_with(&[("billing", &["clients/1"])]);
        watch.record(who("billing"), vec!["clients/3".into()]);
        assert!(watch.concerned("clients/1").is_empty());
        assert_eq!(watch.concerned("clients/3").len(), 1);
        watch.forget(&who("billing"));
        assert!(watch.by_path.is_empty() && watch.by_resource.is_empty());
    }
}
