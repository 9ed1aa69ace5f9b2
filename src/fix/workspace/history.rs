//! Sessions after the fact: listing them, their attempts and diffs, and
//! pruning; the date stamps their ids start with.

use super::*;

/// The sessions recorded for the project at `path`, oldest first.
pub fn sessions(path: &Path) -> Result<Vec<SessionInfo>, FixError> {
    let store = locate(path)?;
    let Ok(repo) = Repository::open(&store.repo_path) else {
        return Ok(Vec::new());
    };
    let dir = state_root(&repo);
    let mut out: Vec<SessionInfo> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("session.json")).ok())
        .filter_map(|b| serde_json::from_slice::<SessionInfo>(&b).ok())
        .filter(|s| s.user_root == store.user_root)
        .map(|mut s| {
            s.upgrade();
            s
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// One session by id, or the latest.
pub fn session(path: &Path, id: Option<&str>) -> Result<SessionInfo, FixError> {
    let all = sessions(path)?;
    match id {
        Some(id) => all
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| FixError::NoSession {
                path: path.to_path_buf(),
                detail: format!("no session {id}"),
            }),
        None => all
            .into_iter()
            .next_back()
            .ok_or_else(|| FixError::NoSession {
                path: path.to_path_buf(),
                detail: "no selfrepair session has run here".into(),
            }),
    }
}

/// An attempt of a session, as recorded by its ref.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptRef {
    pub n: usize,
    pub commit: String,
    pub message: String,
}

pub fn attempts(path: &Path, s: &SessionInfo) -> Result<Vec<AttemptRef>, FixError> {
    let (_, repo) = open_store(path)?;
    let glob = format!("refs/selfrepair/{}/attempt-*", s.id);
    let mut out = Vec::new();
    for r in repo
        .references_glob(&glob)
        .map_err(git_err("refs"))?
        .flatten()
    {
        let (Ok(name), Some(oid)) = (r.name(), r.target()) else {
            continue;
        };
        let Some(n) = name.rsplit('-').next().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let message = repo
            .find_commit(oid)
            .ok()
            .and_then(|c| c.message().ok().map(str::to_string))
            .unwrap_or_default();
        out.push(AttemptRef {
            n,
            commit: oid.to_string(),
            message: message.trim().to_string(),
        });
    }
    out.sort_by_key(|a| a.n);
    Ok(out)
}

/// The diff of a session's winner (or of attempt `n`) against its base.
pub fn session_diff(
    path: &Path,
    s: &SessionInfo,
    attempt: Option<usize>,
) -> Result<FinalDiff, FixError> {
    let (_, repo) = open_store(path)?;
    let target = match attempt {
        Some(n) => attempts(path, s)?
            .into_iter()
            .find(|a| a.n == n)
            .map(|a| a.commit)
            .ok_or_else(|| FixError::NoSession {
                path: path.to_path_buf(),
                detail: if s.refs_removed {
                    format!(
                        "session {} found no fix and its attempts were not kept (run `selfrepair fix --keep` to keep them)",
                        s.id
                    )
                } else {
                    format!("session {} has no attempt {n}", s.id)
                },
            })?,
        None => s.winner.clone().ok_or_else(|| FixError::NoSession {
            path: path.to_path_buf(),
            detail: match (&s.outcome, s.refs_removed) {
                (None, _) => format!("session {} has not finished (or stopped without an end)", s.id),
                (Some(_), true) => format!(
                    "session {} found no fix ({}); see `selfrepair log --session {}`",
                    s.id,
                    s.reason.as_deref().unwrap_or("no reason recorded"),
                    s.id
                ),
                (Some(_), false) => format!(
                    "session {} found no fix; see `selfrepair log --session {}` and `selfrepair diff --attempt N`",
                    s.id, s.id
                ),
            },
        })?,
    };
    let oid = |x: &str| Oid::from_str(x).map_err(git_err("commit id"));
    diff_between(&repo, oid(&s.base)?, oid(&target)?)
}

/// Delete session `id`'s branch and its `refs/selfrepair/<id>/*` refs;
/// how many refs that was (with `dry_run`, would be).
pub(super) fn delete_refs(repo: &Repository, id: &str, dry_run: bool) -> Result<usize, FixError> {
    let mut names: Vec<String> = repo
        .references_glob(&format!("refs/selfrepair/{id}/*"))
        .map_err(git_err("refs"))?
        .flatten()
        .filter_map(|r| r.name().ok().map(str::to_string))
        .collect();
    let branch = format!("refs/heads/selfrepair/{id}");
    if repo.find_reference(&branch).is_ok() {
        names.push(branch);
    }
    if !dry_run {
        for n in &names {
            if let Ok(mut r) = repo.find_reference(n) {
                r.delete().map_err(git_err("delete a session ref"))?;
            }
        }
    }
    Ok(names.len())
}

/// One session `prune` removed (or, dry, would remove), or kept.
#[derive(Clone, Debug, Serialize)]
pub struct PruneEntry {
    pub id: String,
    /// `fixed`, `not_fixed`, …; `None` for an unfinished session or refs
    /// left without a session.json.
    pub outcome: Option<String>,
    /// Seconds since it was created (`None`: unknown).
    pub age_secs: Option<u64>,
    /// Branch and attempt refs.
    pub refs: usize,
    /// Bytes of its state dir (log, session.json, undo record).
    pub state_bytes: u64,
    /// For a kept session: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_because: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    pub removed: Vec<PruneEntry>,
    pub kept: Vec<PruneEntry>,
}

/// Sessions younger than this are never pruned: one may be starting (its
/// branch exists before its session.json does).
const PRUNE_GRACE_SECS: u64 = 60;

/// Remove the project's sessions older than `older_than` (all finished
/// ones when `None`): their branch, attempt refs, state dir and any work
/// tree left behind. An unfinished session is removed only when it is
/// older than an explicit `older_than`; none younger than a minute ever is.
pub fn prune(
    path: &Path,
    older_than: Option<std::time::Duration>,
    dry_run: bool,
) -> Result<PruneReport, FixError> {
    let store = locate(path)?;
    let Ok(repo) = Repository::open(&store.repo_path) else {
        return Ok(PruneReport::default());
    };
    let root = state_root(&repo);
    let mut found: BTreeMap<String, Option<SessionInfo>> = sessions(path)?
        .into_iter()
        .map(|s| (s.id.clone(), Some(s)))
        .collect();
    // Refs without a session.json: a session that died while starting.
    // (In a repository of several work trees, only this tree's sessions
    // have a session.json here; another's state dir is left alone.)
    let mut ref_ids: Vec<String> = Vec::new();
    for r in repo.references().map_err(git_err("refs"))?.flatten() {
        let Ok(name) = r.name() else { continue };
        let id = name
            .strip_prefix("refs/heads/selfrepair/")
            .or_else(|| name.strip_prefix("refs/selfrepair/"))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string());
        // Only names sessions give (a user's own `selfrepair/x` is not one).
        if let Some(id) = id.filter(|id| stamp_secs(id).is_some()) {
            ref_ids.push(id);
        }
    }
    for id in ref_ids {
        if !root.join(&id).join("session.json").exists() {
            found.entry(id).or_insert(None);
        }
    }
    let mut report = PruneReport::default();
    for (id, info) in found {
        let age_secs = match &info {
            Some(s) => s.age_secs(),
            None => age_of_stamp(&id),
        };
        let state_dir = root.join(&id);
        let mut entry = PruneEntry {
            id: id.clone(),
            outcome: info.as_ref().and_then(|s| s.outcome.clone()),
            age_secs,
            refs: delete_refs(&repo, &id, true)?,
            state_bytes: dir_size(&state_dir),
            kept_because: None,
        };
        let unfinished = info.as_ref().is_some_and(|s| s.outcome.is_none());
        entry.kept_because = match (age_secs, older_than) {
            (None, _) => Some("its age is unknown (the id is not a date)".into()),
            (Some(a), _) if a < PRUNE_GRACE_SECS => {
                Some("it started in the last minute (it may be running)".into())
            }
            (Some(a), Some(limit)) if a < limit.as_secs() => {
                Some("it is younger than --older-than".into())
            }
            (_, None) if unfinished => Some(
                "it has not finished (running, or stopped without an end); pass --older-than to remove it"
                    .into(),
            ),
            _ => None,
        };
        if entry.kept_because.is_some() {
            report.kept.push(entry);
            continue;
        }
        if !dry_run {
            remove_work_tree(&repo, &id)?;
            delete_refs(&repo, &id, false)?;
            if state_dir.exists() {
                std::fs::remove_dir_all(&state_dir).map_err(|e| FixError::io(&state_dir, e))?;
            }
        }
        report.removed.push(entry);
    }
    Ok(report)
}

/// A work tree a session left (`--keep-worktree`, or a session that died):
/// its directory, if it is the one the session made, and git's record.
fn remove_work_tree(repo: &Repository, id: &str) -> Result<(), FixError> {
    let name = format!("selfrepair-{id}");
    let Ok(wt) = repo.find_worktree(&name) else {
        return Ok(());
    };
    // Only a directory named as sessions name theirs: the record is in the
    // repository, and anything could have rewritten it.
    let dir = wt.path().to_path_buf();
    if dir.file_name().is_some_and(|n| n == name.as_str()) && dir.is_dir() {
        std::fs::remove_dir_all(&dir).map_err(|e| FixError::io(&dir, e))?;
    }
    wt.prune(Some(
        WorktreePruneOptions::new().valid(true).working_tree(false),
    ))
    .map_err(git_err("prune the work tree"))
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Seconds from a `YYYYMMDD-HHMMSS` stamp (or an id that starts with one)
/// to now.
pub(super) fn age_of_stamp(stamp: &str) -> Option<u64> {
    let then = stamp_secs(stamp)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(now.saturating_sub(then))
}

/// Seconds since the epoch of a `YYYYMMDD-HHMMSS` stamp (UTC), the inverse
/// of [`now_stamp`].
fn stamp_secs(stamp: &str) -> Option<u64> {
    let b = stamp.as_bytes();
    if b.len() < 15 || b[8] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = stamp.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86400 + hh * 3600 + mm * 60 + ss).ok()
}

/// `YYYYMMDD-HHMMSS` in UTC, with no date crate.
pub fn now_stamp() -> String {
    stamp_at(std::time::SystemTime::now())
}

/// `YYYYMMDD-HHMMSS` in UTC of any time (before 1970: the epoch).
pub fn stamp_at(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86400, secs % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_look_like_dates() {
        let s = now_stamp();
        assert_eq!(s.len(), 15);
        assert!(s.starts_with("20"));
    }

    #[test]
    fn stamps_parse_back() {
        assert_eq!(stamp_secs("19700101-000000"), Some(0));
        assert_eq!(stamp_secs("20000301-000001"), Some(951_868_801));
        assert_eq!(stamp_secs("20241231-235959-ab12"), Some(1_735_689_599));
        assert_eq!(stamp_secs("2024123-235959"), None);
        assert_eq!(stamp_secs("20241331-000000"), None);
        assert!(age_of_stamp(&now_stamp()).is_some_and(|a| a < 5));
    }
}
