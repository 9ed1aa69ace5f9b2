//! The work copy and its checkpoints.
//!
//! In a git repository the work happens in a linked git worktree of HEAD
//! plus the user's uncommitted changes, on the branch `selfrepair/<session>`.
//! Every attempt is committed and kept under `refs/selfrepair/<session>/`
//! (not a branch); the branch moves to the winning attempt. A plain
//! directory is first snapshotted into a private repository under
//! `$SELFREPAIR_HOME/plain/` and then treated the same way. The user's
//! working tree, index, HEAD and existing branches are never written,
//! except by [`apply`] and [`undo`] when asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{
    DiffFormat, DiffOptions, IndexAddOption, Oid, Repository, RepositoryOpenFlags, ResetType,
    Signature, StatusOptions, WorktreeAddOptions, WorktreePruneOptions,
};
use serde::{Deserialize, Serialize};

use super::FixError;
use super::runner::SCRATCH_DIR;

mod apply;
mod copy;
mod history;

pub use apply::{Undone, apply, is_applied, undo};
use copy::{copy_ignored, copy_uncommitted, snapshot_plain};
pub use history::{
    AttemptRef, PruneEntry, PruneReport, attempts, now_stamp, prune, session, session_diff,
    sessions, stamp_at,
};
use history::{age_of_stamp, delete_refs};

/// What a session is, saved in `<git dir>/selfrepair/<id>/session.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    pub created: String,
    /// The user's tree: the repository's work dir, or the plain directory.
    pub user_root: PathBuf,
    /// The project inside it, relative.
    pub project_rel: PathBuf,
    pub branch: String,
    /// The commit the attempts start from (HEAD + uncommitted changes).
    pub base: String,
    /// Set when the session ends with a passing attempt.
    #[serde(default)]
    pub winner: Option<String>,
    /// How the session ended ([`super::Outcome::as_str`]: `fixed`,
    /// `not_fixed`, …); `None` while it runs (or if it died).
    #[serde(default)]
    pub outcome: Option<String>,
    /// Why it ended so.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub plain: bool,
    /// Its branch and attempt refs were removed when it ended without a
    /// fix (`fix` without `--keep`).
    #[serde(default)]
    pub refs_removed: bool,
}

impl SessionInfo {
    /// Before the outcome had words of its own, session.json held one
    /// string, `NotFixed: reason` (Rust's Debug name); split it.
    fn upgrade(&mut self) {
        if self.reason.is_some() {
            return;
        }
        let Some((kind, reason)) = self.outcome.as_deref().and_then(|o| o.split_once(": ")) else {
            return;
        };
        let word = match kind {
            "Fixed" => "fixed",
            "AlreadyGreen" => "nothing_to_fix",
            "NotFixed" => "not_fixed",
            "Cancelled" => "cancelled",
            "Reported" => "reported",
            _ => return,
        };
        let reason = reason.to_string();
        self.reason = Some(reason);
        self.outcome = Some(word.to_string());
    }

    /// Seconds since the session was created, from its stamp; `None` if
    /// the stamp does not parse (a session.json edited by hand).
    pub fn age_secs(&self) -> Option<u64> {
        age_of_stamp(&self.created)
    }
}

/// One changed file of a diff, with both versions (for editors that write
/// files themselves, and for `--apply`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Relative to the user's root (repository work dir).
    pub path: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalDiff {
    pub unified: String,
    pub files: Vec<FileChange>,
}

/// Where a project's checkpoints live.
struct Store {
    /// The repository holding sessions (user's, or the private snapshot repo).
    repo_path: PathBuf,
    user_root: PathBuf,
    project_rel: PathBuf,
    plain: bool,
}

fn git_err(what: &str) -> impl Fn(git2::Error) -> FixError + '_ {
    move |e| FixError::Git(format!("{what}: {}", e.message()))
}

fn signature() -> Result<Signature<'static>, FixError> {
    Signature::now("selfrepair", "selfrepair@localhost").map_err(git_err("signature"))
}

/// The private repository that snapshots a plain directory.
fn plain_repo_dir(dir: &Path) -> PathBuf {
    use sha2::Digest;
    let h = sha2::Sha256::digest(dir.to_string_lossy().as_bytes());
    selfrepair_store::home()
        .join("plain")
        .join(&hex::encode(h)[..16])
}

fn locate(path: &Path) -> Result<Store, FixError> {
    let dir = std::fs::canonicalize(path).map_err(|e| FixError::NotADirectory {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !dir.is_dir() {
        return Err(FixError::NotADirectory {
            path: path.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    if let Ok(repo) = Repository::discover(&dir)
        && let Some(wd) = repo.workdir()
    {
        let wd = std::fs::canonicalize(wd).map_err(|e| FixError::io(wd, e))?;
        let project_rel = dir.strip_prefix(&wd).unwrap_or(Path::new("")).to_path_buf();
        return Ok(Store {
            repo_path: wd.clone(),
            user_root: wd,
            project_rel,
            plain: false,
        });
    }
    Ok(Store {
        repo_path: plain_repo_dir(&dir).join("snapshot"),
        user_root: dir,
        project_rel: PathBuf::new(),
        plain: true,
    })
}

/// The repository's `core.worktree`, if set.
fn core_worktree(repo: &Repository) -> Option<String> {
    repo.config()
        .ok()
        .and_then(|c| c.get_string("core.worktree").ok())
}

fn state_root(repo: &Repository) -> PathBuf {
    repo.commondir().join("selfrepair")
}

/// A session's work copy. Opens repositories per call (they are not `Sync`).
///
/// The work copy is the jail's to write, so host-side git never trusts it:
/// the work tree is opened through the git dir we created for it (never
/// through its `.git` file), and before every operation its gitlink, that
/// git dir's link back and `core.worktree` are checked against what they
/// were at creation. A change stops the session with
/// [`FixError::WorkCopyTampered`].
pub(crate) struct Workspace {
    pub info: SessionInfo,
    /// The worktree's root: the sandbox work dir.
    pub root: PathBuf,
    repo_path: PathBuf,
    wt_name: String,
    state_dir: PathBuf,
    /// The work tree's own git dir (`<common dir>/worktrees/<name>`).
    wt_gitdir: PathBuf,
    /// The links as they were made: `root/.git`'s bytes, and the git dir's
    /// `gitdir` file's bytes.
    gitlink: Vec<u8>,
    backlink: Vec<u8>,
    /// `core.worktree` as the repository had it (normally unset).
    core_worktree: Option<String>,
    /// Ignored files of the user's tree copied in, and what was left out.
    pub ignored: IgnoredFiles,
}

/// What the work copy took of the user's ignored files: the tests may need
/// a generated `_version.py` or a build output that git does not track.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IgnoredFiles {
    /// Copied (paths relative to the user's root).
    pub copied: Vec<String>,
    /// Left out: environments and dependency trees (the jail reads the
    /// interpreter's in place), caches, and anything past the size caps.
    pub left_out: Vec<String>,
    /// The user's directories linked into the work copy (`node_modules`),
    /// which the jail must be able to read.
    #[serde(skip)]
    pub linked: Vec<PathBuf>,
    /// Untracked directories left out of the work copy's commits: dependency
    /// trees and anything past the caps (relative to the worktree root).
    #[serde(skip)]
    pub uncommitted: Vec<String>,
}

/// An untracked (not ignored) directory with more files or bytes than this
/// stays in place, out of the session's commits.
const UNTRACKED_DIR_FILES: usize = 2000;
const UNTRACKED_DIR_BYTES: u64 = 64 << 20;

/// Ignored directories never copied: environments, dependency trees and
/// caches. (An interpreter in one is exposed read-only in place.)
const NEVER_COPIED: [&str; 14] = [
    ".venv",
    "venv",
    "env",
    "node_modules",
    "target",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".eggs",
    ".git",
    SCRATCH_DIR,
];
/// The largest ignored file copied, and the most copied in all.
const IGNORED_FILE_CAP: u64 = 1 << 20;
const IGNORED_TOTAL_CAP: u64 = 64 << 20;
const IGNORED_COUNT_CAP: usize = 2000;

impl Workspace {
    /// Make the work copy of the project at `path` for session `id`.
    pub fn create(path: &Path, id: &str) -> Result<Workspace, FixError> {
        super::blocking::blocking(|| {
            let store = locate(path)?;
            if store.plain {
                snapshot_plain(&store.user_root, &store.repo_path)?;
            }
            let repo = Repository::open(&store.repo_path).map_err(git_err("open repository"))?;
            let head =
                repo.head()
                    .and_then(|h| h.peel_to_commit())
                    .map_err(|_| FixError::NoCommits {
                        path: store.user_root.clone(),
                    })?;
            let branch = format!("selfrepair/{id}");
            let br = repo
                .branch(&branch, &head, false)
                .map_err(git_err("create the session branch"))?;
            let wt_name = format!("selfrepair-{id}");
            let root = std::env::temp_dir().join(&wt_name);
            let mut opts = WorktreeAddOptions::new();
            opts.reference(Some(br.get()));
            repo.worktree(&wt_name, &root, Some(&opts))
                .map_err(git_err("add the work tree"))?;
            let wt_gitdir = repo.commondir().join("worktrees").join(&wt_name);
            let read = |p: &Path| std::fs::read(p).map_err(|e| FixError::io(p, e));
            let gitlink = read(&root.join(".git"))?;
            let backlink = read(&wt_gitdir.join("gitdir"))?;
            let core_worktree = core_worktree(&repo);
            let state_dir = state_root(&repo).join(id);
            std::fs::create_dir_all(&state_dir).map_err(|e| FixError::io(&state_dir, e))?;
            let mut ws = Workspace {
                info: SessionInfo {
                    id: id.to_string(),
                    created: now_stamp(),
                    user_root: store.user_root.clone(),
                    project_rel: store.project_rel.clone(),
                    branch,
                    base: String::new(),
                    winner: None,
                    outcome: None,
                    reason: None,
                    plain: store.plain,
                    refs_removed: false,
                },
                root: root.clone(),
                repo_path: store.repo_path,
                wt_name,
                state_dir,
                wt_gitdir,
                gitlink,
                backlink,
                core_worktree,
                ignored: IgnoredFiles::default(),
            };
            if !store.plain {
                let mut ignored = IgnoredFiles::default();
                let big = copy_uncommitted(&repo, &store.user_root, &root, &mut ignored)?;
                ws.ignored = copy_ignored(&repo, &store.user_root, &root)?;
                ws.ignored.left_out.extend(ignored.left_out);
                ws.ignored.linked.extend(ignored.linked);
                ws.ignored.uncommitted = big;
            }
            let base = ws.commit("base: HEAD plus uncommitted changes", None, true)?;
            ws.info.base = base.to_string();
            ws.save()?;
            Ok(ws)
        })
    }

    /// The work tree's repository, opened through the git dir we made for
    /// it, after checking that nothing redirected it.
    fn wt(&self) -> Result<Repository, FixError> {
        self.verify_links()?;
        let wt = Repository::open_ext(
            &self.wt_gitdir,
            RepositoryOpenFlags::NO_SEARCH,
            std::iter::empty::<&std::ffi::OsStr>(),
        )
        .map_err(git_err("open the work tree"))?;
        let tampered = |detail: String| FixError::WorkCopyTampered {
            root: self.root.clone(),
            detail,
        };
        if core_worktree(&wt) != self.core_worktree {
            return Err(tampered(format!(
                "core.worktree is now {:?}",
                core_worktree(&wt)
            )));
        }
        let same = |a: &Path, b: &Path| {
            std::fs::canonicalize(a)
                .ok()
                .is_some_and(|a| std::fs::canonicalize(b).ok() == Some(a))
        };
        match wt.workdir() {
            Some(w) if same(w, &self.root) && same(wt.path(), &self.wt_gitdir) => Ok(wt),
            w => Err(tampered(format!(
                "the work tree's git dir now names {:?} as its work tree",
                w
            ))),
        }
    }

    /// The work copy's `.git` must still be the file we wrote, naming our
    /// git dir, and that git dir must still point back at it.
    fn verify_links(&self) -> Result<(), FixError> {
        let tampered = |detail: String| FixError::WorkCopyTampered {
            root: self.root.clone(),
            detail,
        };
        let link = self.root.join(".git");
        match link.symlink_metadata() {
            Ok(m) if m.file_type().is_file() => {}
            Ok(m) => {
                return Err(tampered(format!(
                    "{} is no longer a plain file ({:?})",
                    link.display(),
                    m.file_type()
                )));
            }
            Err(e) => return Err(tampered(format!("{}: {e}", link.display()))),
        }
        let now = std::fs::read(&link).map_err(|e| tampered(format!("{}: {e}", link.display())))?;
        if now != self.gitlink {
            return Err(tampered(format!(
                "{} now says {:?}",
                link.display(),
                String::from_utf8_lossy(&now[..now.len().min(200)]).trim()
            )));
        }
        let back = self.wt_gitdir.join("gitdir");
        if std::fs::read(&back).ok().as_deref() != Some(self.backlink.as_slice()) {
            return Err(tampered(format!("{} changed", back.display())));
        }
        Ok(())
    }

    fn repo(&self) -> Result<Repository, FixError> {
        Repository::open(&self.repo_path).map_err(git_err("open repository"))
    }

    pub fn project_dir(&self) -> PathBuf {
        self.root.join(&self.info.project_rel)
    }

    pub fn log_path(&self) -> PathBuf {
        self.state_dir.join("log.jsonl")
    }

    /// `.git/selfrepair/<session>/`: the log, session.json, the transcript.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn save(&self) -> Result<(), FixError> {
        super::blocking::blocking(|| {
            let p = self.state_dir.join("session.json");
            let json =
                serde_json::to_vec_pretty(&self.info).map_err(|e| FixError::Git(e.to_string()))?;
            std::fs::write(&p, json).map_err(|e| FixError::io(&p, e))
        })
    }

    /// Commit the work copy as it is. With `attempt`, the commit hangs off
    /// the base and is kept as `refs/selfrepair/<id>/attempt-N`; the base
    /// commit itself moves the session branch.
    pub fn commit(
        &self,
        message: &str,
        attempt: Option<usize>,
        on_branch: bool,
    ) -> Result<Oid, FixError> {
        super::blocking::blocking(|| {
            let wt = self.wt()?;
            let mut index = wt.index().map_err(git_err("index"))?;
            let out = &self.ignored.uncommitted;
            let skip = |p: &Path, _: &[u8]| -> i32 {
                i32::from(p.starts_with(SCRATCH_DIR) || out.iter().any(|d| p.starts_with(d)))
            };
            index
                .add_all(["*"], IndexAddOption::DEFAULT, Some(&mut |p, m| skip(p, m)))
                .map_err(git_err("stage"))?;
            index
                .update_all(["*"], Some(&mut |p, m| skip(p, m)))
                .map_err(git_err("stage"))?;
            index.write().map_err(git_err("write index"))?;
            let tree_id = index.write_tree().map_err(git_err("write tree"))?;
            let tree = wt.find_tree(tree_id).map_err(git_err("tree"))?;
            let parent = match attempt {
                Some(_) => wt
                    .find_commit(self.base()?)
                    .map_err(git_err("base commit"))?,
                None => wt
                    .head()
                    .and_then(|h| h.peel_to_commit())
                    .map_err(git_err("head"))?,
            };
            let sig = signature()?;
            let update = on_branch.then_some("HEAD");
            let oid = wt
                .commit(update, &sig, &sig, message, &tree, &[&parent])
                .map_err(git_err("commit"))?;
            if let Some(n) = attempt {
                let name = format!("refs/selfrepair/{}/attempt-{n}", self.info.id);
                wt.reference(&name, oid, true, message)
                    .map_err(git_err("attempt ref"))?;
            }
            Ok(oid)
        })
    }

    fn base(&self) -> Result<Oid, FixError> {
        Oid::from_str(&self.info.base).map_err(git_err("base id"))
    }

    /// Point the session branch at the winning attempt.
    pub fn set_winner(&mut self, oid: Oid) -> Result<(), FixError> {
        super::blocking::blocking(|| {
            let repo = self.repo()?;
            repo.reference(
                &format!("refs/heads/{}", self.info.branch),
                oid,
                true,
                "selfrepair: winning attempt",
            )
            .map_err(git_err("move the session branch"))?;
            self.info.winner = Some(oid.to_string());
            self.save()
        })
    }

    /// Put the work copy back to the base: tracked files reset, new files
    /// removed (the scratch dir stays: caches).
    pub fn reset(&self) -> Result<(), FixError> {
        super::blocking::blocking(|| {
            let wt = self.wt()?;
            let base = wt
                .find_object(self.base()?, None)
                .map_err(git_err("base"))?;
            for p in self.changed_paths()? {
                let full = self.root.join(&p);
                let is_dir = full
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_dir());
                if !is_dir && wt.status_file(Path::new(&p)).is_ok_and(|s| s.is_wt_new()) {
                    let _ = std::fs::remove_file(full);
                }
            }
            wt.reset(&base, ResetType::Hard, None)
                .map_err(git_err("reset the work tree"))
        })
    }

    /// Paths (relative to the worktree root) that differ from HEAD, scratch excluded.
    pub fn changed_paths(&self) -> Result<Vec<String>, FixError> {
        super::blocking::blocking(|| {
            let wt = self.wt()?;
            let mut o = StatusOptions::new();
            o.include_untracked(true)
                .recurse_untracked_dirs(true)
                .include_ignored(false);
            let st = wt.statuses(Some(&mut o)).map_err(git_err("status"))?;
            Ok(st
                .iter()
                .filter_map(|e| e.path().ok().map(str::to_string))
                .filter(|p| !p.starts_with(&format!("{SCRATCH_DIR}/")))
                .filter(|p| {
                    !self
                        .ignored
                        .uncommitted
                        .iter()
                        .any(|d| Path::new(p).starts_with(d))
                })
                .collect())
        })
    }

    /// Tracked files the work copy changed or deleted since the last commit
    /// (new files, such as build output, do not count).
    pub fn modified_tracked(&self) -> Result<Vec<String>, FixError> {
        super::blocking::blocking(|| {
            let wt = self.wt()?;
            let mut o = StatusOptions::new();
            o.include_untracked(false).include_ignored(false);
            let st = wt.statuses(Some(&mut o)).map_err(git_err("status"))?;
            Ok(st
                .iter()
                .filter(|e| {
                    let s = e.status();
                    s.is_wt_modified() || s.is_wt_deleted() || s.is_wt_typechange()
                })
                .filter_map(|e| e.path().ok().map(str::to_string))
                .collect())
        })
    }

    /// Forget the session: its branch, attempt refs and state.
    pub fn discard(&self) -> Result<(), FixError> {
        super::blocking::blocking(|| {
            delete_refs(&self.repo()?, &self.info.id, false)?;
            let _ = std::fs::remove_dir_all(&self.state_dir);
            Ok(())
        })
    }

    /// Delete the session's branch and attempt refs, keeping its log and
    /// session.json (which records that they are gone).
    pub fn remove_refs(&mut self) -> Result<(), FixError> {
        super::blocking::blocking(|| {
            delete_refs(&self.repo()?, &self.info.id, false)?;
            self.info.refs_removed = true;
            self.save()
        })
    }

    /// A project file's text (path relative to the project); symlinks are
    /// not followed, so nothing outside the work copy reaches a prompt.
    pub fn read(&self, rel: &str) -> Option<String> {
        let p = self.project_dir().join(rel);
        if p.symlink_metadata().ok()?.file_type().is_symlink() {
            return None;
        }
        std::fs::read_to_string(p).ok()
    }

    /// Write new contents (paths relative to the project). A path that
    /// leads out of the work copy through a symlink is refused: the paths
    /// come from a model. Every part of the path is checked before any
    /// directory is made, so nothing is created through a committed link.
    pub fn write(&self, files: &BTreeMap<String, String>) -> Result<(), FixError> {
        super::blocking::blocking(|| {
            use std::os::unix::fs::OpenOptionsExt;
            let refuse =
                |p: &Path, why: &str| FixError::io(p, std::io::Error::other(why.to_string()));
            for (rel, text) in files {
                let full_rel = self.info.project_rel.join(rel);
                let parts: Vec<_> = full_rel.components().collect();
                let mut p = self.root.clone();
                for (i, c) in parts.iter().enumerate() {
                    match c {
                        std::path::Component::Normal(n) => p.push(n),
                        std::path::Component::CurDir => continue,
                        _ => return Err(refuse(&p, "refusing a path that leaves the work copy")),
                    }
                    let last = i + 1 == parts.len();
                    match p.symlink_metadata() {
                        Ok(m) if m.file_type().is_symlink() => {
                            return Err(refuse(&p, "refusing to write through a symlink"));
                        }
                        Ok(m) if !last && !m.is_dir() => {
                            return Err(refuse(&p, "not a directory"));
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            if !last {
                                std::fs::create_dir(&p).map_err(|e| FixError::io(&p, e))?;
                            }
                        }
                        Err(e) => return Err(FixError::io(&p, e)),
                    }
                }
                // The last part is checked above; O_NOFOLLOW keeps it so.
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&p)
                    .map_err(|e| FixError::io(&p, e))?;
                std::io::Write::write_all(&mut f, text.as_bytes())
                    .map_err(|e| FixError::io(&p, e))?;
            }
            Ok(())
        })
    }

    /// The diff from the base to `oid`.
    pub fn diff_to(&self, oid: Oid) -> Result<FinalDiff, FixError> {
        super::blocking::blocking(|| diff_between(&self.wt()?, self.base()?, oid))
    }

    /// Append one JSON line to the session log.
    pub fn log(&self, value: &serde_json::Value) {
        use std::io::Write;
        let p = self.log_path();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
        {
            let _ = writeln!(f, "{value}");
        }
    }

    /// Remove the work tree (its commits and refs stay).
    pub fn remove(&self) -> Result<(), FixError> {
        super::blocking::blocking(|| {
            let repo = self.repo()?;
            let _ = std::fs::remove_dir_all(&self.root);
            if let Ok(wt) = repo.find_worktree(&self.wt_name) {
                wt.prune(Some(
                    WorktreePruneOptions::new().valid(true).working_tree(true),
                ))
                .map_err(git_err("prune the work tree"))?;
            }
            Ok(())
        })
    }
}

/// The project's store (its repository, or a plain directory's snapshot) and the repository.
fn open_store(path: &Path) -> Result<(Store, Repository), FixError> {
    let store = locate(path)?;
    let repo = Repository::open(&store.repo_path).map_err(git_err("open repository"))?;
    Ok((store, repo))
}

fn diff_between(repo: &Repository, from: Oid, to: Oid) -> Result<FinalDiff, FixError> {
    let tree = |o: Oid| {
        repo.find_commit(o)
            .and_then(|c| c.tree())
            .map_err(git_err("read commit"))
    };
    let (a, b) = (tree(from)?, tree(to)?);
    let mut opts = DiffOptions::new();
    opts.context_lines(3);
    let diff = repo
        .diff_tree_to_tree(Some(&a), Some(&b), Some(&mut opts))
        .map_err(git_err("diff"))?;
    let mut unified = String::new();
    diff.print(DiffFormat::Patch, |_, _, line| {
        if matches!(line.origin(), '+' | '-' | ' ') {
            unified.push(line.origin());
        }
        unified.push_str(&String::from_utf8_lossy(line.content()));
        true
    })
    .map_err(git_err("render diff"))?;
    let blob_text = |id: Oid| -> Option<String> {
        if id.is_zero() {
            return None;
        }
        repo.find_blob(id)
            .ok()
            .map(|b| String::from_utf8_lossy(b.content()).into_owned())
    };
    let files = diff
        .deltas()
        .map(|d| FileChange {
            path: d
                .new_file()
                .path()
                .or_else(|| d.old_file().path())
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            old: blob_text(d.old_file().id()),
            new: blob_text(d.new_file().id()),
        })
        .collect();
    Ok(FinalDiff { unified, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_outcome_lines_are_split() {
        let mut s: SessionInfo = serde_json::from_value(serde_json::json!({
            "id": "20240101-000000-abcd", "created": "20240101-000000",
            "user_root": "/r", "project_rel": "", "branch": "selfrepair/x",
            "base": "", "outcome": "NotFixed: no mutant passes: a: b"
        }))
        .unwrap();
        s.upgrade();
        assert_eq!(s.outcome.as_deref(), Some("not_fixed"));
        assert_eq!(s.reason.as_deref(), Some("no mutant passes: a: b"));
    }
}
