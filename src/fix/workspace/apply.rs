//! `apply` and `undo`: the only writes to the user's own tree.

use super::*;

/// What `--apply` changed, so `undo` can put it back.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct UndoRecord {
    files: Vec<FileChange>,
    /// Set by `undo` (the record stays, so a second undo can say so).
    #[serde(default)]
    undone: bool,
}

/// Whether the user's tree already holds the fix: every file of `diff`
/// is as the fix leaves it.
pub fn is_applied(s: &SessionInfo, diff: &FinalDiff) -> bool {
    !diff.files.is_empty()
        && diff
            .files
            .iter()
            .all(|f| std::fs::read_to_string(s.user_root.join(&f.path)).ok() == f.new)
}

/// Apply `diff` on the user's tree, keeping their other changes. A file
/// is written only if it is as the session found it, or if the fix's hunks
/// still apply to what it has become; otherwise nothing is written.
pub fn apply(path: &Path, s: &SessionInfo, diff: &FinalDiff) -> Result<Vec<String>, FixError> {
    let (_, repo) = open_store(path)?;
    let mut writes: Vec<FileChange> = Vec::new();
    for f in &diff.files {
        let target = s.user_root.join(&f.path);
        let current = std::fs::read_to_string(&target).ok();
        let new = if current == f.old {
            f.new.clone()
        } else {
            Some(
                rebase_change(f, current.as_deref()).ok_or_else(|| FixError::ApplyConflict {
                    file: target.clone(),
                    branch: s.branch.clone(),
                })?,
            )
        };
        writes.push(FileChange {
            path: f.path.clone(),
            old: current,
            new,
        });
    }
    let record = serde_json::to_vec_pretty(&UndoRecord {
        files: writes.clone(),
        undone: false,
    })
    .map_err(|e| FixError::Git(e.to_string()))?;
    let undo_path = state_root(&repo).join(&s.id).join("undo.json");
    std::fs::write(&undo_path, record).map_err(|e| FixError::io(&undo_path, e))?;
    write_changes(&s.user_root, &writes, |c| c.new.as_deref())?;
    Ok(writes.into_iter().map(|w| w.path).collect())
}

/// The fix merged into a file the user changed since (a three-way merge
/// with the session's starting text as the base); `None` on conflict.
fn rebase_change(f: &FileChange, current: Option<&str>) -> Option<String> {
    let (old, new, current) = (f.old.as_deref()?, f.new.as_deref()?, current?);
    diffy::merge(old, current, new).ok()
}

fn write_changes(
    root: &Path,
    files: &[FileChange],
    pick: impl Fn(&FileChange) -> Option<&str>,
) -> Result<(), FixError> {
    for f in files {
        let p = root.join(&f.path);
        match pick(f) {
            Some(text) => {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d).map_err(|e| FixError::io(d, e))?;
                }
                std::fs::write(&p, text).map_err(|e| FixError::io(&p, e))?;
            }
            None if p.exists() => std::fs::remove_file(&p).map_err(|e| FixError::io(&p, e))?,
            None => {}
        }
    }
    Ok(())
}

/// What `undo` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undone {
    /// Files put back as they were before the apply, and files the apply
    /// created that were removed (paths relative to the user's root).
    Restored {
        restored: Vec<String>,
        removed: Vec<String>,
    },
    /// An earlier `undo` already reverted this session's apply.
    Already,
}

/// Revert the last `--apply` of session `s`, if its files are still as it left them.
pub fn undo(path: &Path, s: &SessionInfo) -> Result<Undone, FixError> {
    let (_, repo) = open_store(path)?;
    let undo_path = state_root(&repo).join(&s.id).join("undo.json");
    let mut record: UndoRecord = std::fs::read(&undo_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| FixError::NoSession {
            path: path.to_path_buf(),
            detail: format!("session {} was not applied (nothing to undo)", s.id),
        })?;
    if record.undone {
        return Ok(Undone::Already);
    }
    for f in &record.files {
        let p = s.user_root.join(&f.path);
        if std::fs::read_to_string(&p).ok() != f.new {
            return Err(FixError::UndoConflict { file: p });
        }
    }
    write_changes(&s.user_root, &record.files, |c| c.old.as_deref())?;
    record.undone = true;
    let json = serde_json::to_vec_pretty(&record).map_err(|e| FixError::Git(e.to_string()))?;
    std::fs::write(&undo_path, json).map_err(|e| FixError::io(&undo_path, e))?;
    let (restored, removed) = record
        .files
        .into_iter()
        .partition::<Vec<_>, _>(|f| f.old.is_some());
    Ok(Undone::Restored {
        restored: restored.into_iter().map(|f| f.path).collect(),
        removed: removed.into_iter().map(|f| f.path).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_replay_on_changed_files() {
        let f = FileChange {
            path: "a.py".into(),
            old: Some("a\nb\nc\nd\ne\n".into()),
            new: Some("a\nb\nC\nd\ne\n".into()),
        };
        assert_eq!(
            rebase_change(&f, Some("x\na\nb\nc\nd\ne\n")).as_deref(),
            Some("x\na\nb\nC\nd\ne\n")
        );
        assert_eq!(rebase_change(&f, Some("a\nb\nzz\nd\ne\n")), None);
        // A user edit between two changed regions is kept, not a conflict.
        let f = FileChange {
            path: "a.py".into(),
            old: Some("a\nb\nc\nd\ne\nf\ng\n".into()),
            new: Some("a\nB\nc\nd\ne\nF\ng\n".into()),
        };
        assert_eq!(
            rebase_change(&f, Some("a\nb\nc\nD\ne\nf\ng\n")).as_deref(),
            Some("a\nB\nc\nD\ne\nF\ng\n")
        );
        // The same change made by both sides is no conflict either.
        assert_eq!(
            rebase_change(&f, Some("a\nB\nc\nd\ne\nf\ng\n")).as_deref(),
            Some("a\nB\nc\nd\ne\nF\ng\n")
        );
    }
}
