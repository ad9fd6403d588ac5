//! Keeping a cache directory within a size: the files least recently used
//! go first. The operator's caches live on an `emptyDir` with a size limit,
//! and every new component digest adds an entry (35 MiB for a compiled
//! JavaScript component); without a budget the pod would be evicted.

use std::path::Path;
use std::time::SystemTime;

/// Marks `path` as just used, so that pruning keeps it longest.
pub fn touch(path: &Path) {
    let now = SystemTime::now();
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(now);
    }
}

/// Deletes the least recently used files of `dir` (not of its
/// subdirectories) until they take at most `budget_bytes`; `keep` is never
/// deleted. Returns how many files went. Errors only cost disk space.
pub fn prune(dir: &Path, budget_bytes: u64, keep: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<(SystemTime, u64, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let metadata = entry.metadata().ok()?;
            metadata.is_file().then(|| {
                (
                    metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    metadata.len(),
                    entry.path(),
                )
            })
        })
        .collect();
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    files.sort();
    let mut removed = 0;
    for (_, len, path) in files {
        if total <= budget_bytes {
            break;
        }
        if path == keep {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            total = total.saturating_sub(len);
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, kept_bytes = total, budget_bytes, "pruned the least recently used cache entries");
    }
    removed
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn file(dir: &Path, name: &str, len: usize, age_s: u64) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; len]).expect("write");
        let when = SystemTime::now() - Duration::from_secs(age_s);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(when))
            .expect("set mtime");
        path
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("disk-budget-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn the_least_recently_used_go_first_and_the_new_entry_stays() {
        let dir = scratch("lru");
        let old = file(&dir, "old", 100, 300);
        let used = file(&dir, "used", 100, 200);
        let new = file(&dir, "new", 100, 400);
        touch(&used);
        assert_eq!(prune(&dir, 200, &new), 1);
        assert!(!old.exists() && used.exists() && new.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nothing_goes_within_the_budget_and_the_kept_one_stays_beyond_it() {
        let dir = scratch("budget");
        let only = file(&dir, "only", 100, 10);
        assert_eq!(prune(&dir, 1_000, &only), 0);
        assert_eq!(prune(&dir, 10, &only), 0);
        assert!(only.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
