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
pub struct Workspace {
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
            let big = big_untracked(&repo, &store.user_root, &root, &mut ignored)?;
            copy_uncommitted(&repo, &store.user_root, &root, &big)?;
            ws.ignored = copy_ignored(&repo, &store.user_root, &root)?;
            ws.ignored.left_out.extend(ignored.left_out);
            ws.ignored.linked.extend(ignored.linked);
            ws.ignored.uncommitted = big;
        }
        let base = ws.commit("base: HEAD plus uncommitted changes", None, true)?;
        ws.info.base = base.to_string();
        ws.save()?;
        Ok(ws)
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
        let p = self.state_dir.join("session.json");
        let json =
            serde_json::to_vec_pretty(&self.info).map_err(|e| FixError::Git(e.to_string()))?;
        std::fs::write(&p, json).map_err(|e| FixError::io(&p, e))
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
    }

    fn base(&self) -> Result<Oid, FixError> {
        Oid::from_str(&self.info.base).map_err(git_err("base id"))
    }

    /// Point the session branch at the winning attempt.
    pub fn set_winner(&mut self, oid: Oid) -> Result<(), FixError> {
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
    }

    /// Put the work copy back to the base: tracked files reset, new files
    /// removed (the scratch dir stays: caches).
    pub fn reset(&self) -> Result<(), FixError> {
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
    }

    /// Paths (relative to the worktree root) that differ from HEAD, scratch excluded.
    pub fn changed_paths(&self) -> Result<Vec<String>, FixError> {
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
    }

    /// Tracked files the work copy changed or deleted since the last commit
    /// (new files, such as build output, do not count).
    pub fn modified_tracked(&self) -> Result<Vec<String>, FixError> {
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
    }

    /// Forget the session: its branch, attempt refs and state.
    pub fn discard(&self) -> Result<(), FixError> {
        delete_refs(&self.repo()?, &self.info.id, false)?;
        let _ = std::fs::remove_dir_all(&self.state_dir);
        Ok(())
    }

    /// Delete the session's branch and attempt refs, keeping its log and
    /// session.json (which records that they are gone).
    pub fn remove_refs(&mut self) -> Result<(), FixError> {
        delete_refs(&self.repo()?, &self.info.id, false)?;
        self.info.refs_removed = true;
        self.save()
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
        use std::os::unix::fs::OpenOptionsExt;
        let refuse = |p: &Path, why: &str| FixError::io(p, std::io::Error::other(why.to_string()));
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
            std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| FixError::io(&p, e))?;
        }
        Ok(())
    }

    /// The diff from the base to `oid`.
    pub fn diff_to(&self, oid: Oid) -> Result<FinalDiff, FixError> {
        diff_between(&self.wt()?, self.base()?, oid)
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
        let repo = self.repo()?;
        let _ = std::fs::remove_dir_all(&self.root);
        if let Ok(wt) = repo.find_worktree(&self.wt_name) {
            wt.prune(Some(
                WorktreePruneOptions::new().valid(true).working_tree(true),
            ))
            .map_err(git_err("prune the work tree"))?;
        }
        Ok(())
    }
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

/// Untracked (not ignored) directories that are dependency trees or too big
/// to snapshot: never copied nor committed; `node_modules` is linked in
/// place. Their paths, relative to the root.
fn big_untracked(
    repo: &Repository,
    user_root: &Path,
    root: &Path,
    out: &mut IgnoredFiles,
) -> Result<Vec<String>, FixError> {
    let mut o = StatusOptions::new();
    o.include_untracked(true)
        .recurse_untracked_dirs(false)
        .include_ignored(false)
        .exclude_submodules(true);
    let st = repo.statuses(Some(&mut o)).map_err(git_err("status"))?;
    let mut big = Vec::new();
    for e in st.iter() {
        let Ok(rel) = e.path() else { continue };
        let Some(dir) = rel.strip_suffix('/') else {
            continue;
        };
        let src = user_root.join(dir);
        if !src.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let name = Path::new(dir)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !NEVER_COPIED.contains(&name.as_str()) && !exceeds_caps(&src) {
            continue;
        }
        if name == "node_modules" {
            link_in_place(&src, &root.join(dir), out)?;
        }
        out.left_out.push(format!(
            "{dir}/ (untracked, too large to snapshot: left in place)"
        ));
        big.push(dir.to_string());
    }
    Ok(big)
}

/// Whether a directory holds more than [`UNTRACKED_DIR_FILES`] files or
/// [`UNTRACKED_DIR_BYTES`] bytes (links not followed; stops at the cap).
fn exceeds_caps(dir: &Path) -> bool {
    let (mut files, mut bytes) = (0usize, 0u64);
    let walk = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .follow_links(false)
        .build();
    for e in walk.flatten() {
        if e.file_type().is_some_and(|t| !t.is_dir()) {
            files += 1;
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            if files > UNTRACKED_DIR_FILES || bytes > UNTRACKED_DIR_BYTES {
                return true;
            }
        }
    }
    false
}

/// Link the user's `src` (a dependency tree) at `dst` in the work copy; the
/// jail reads it in place, read-only (see `linked`).
fn link_in_place(src: &Path, dst: &Path, out: &mut IgnoredFiles) -> Result<(), FixError> {
    if dst.symlink_metadata().is_ok() {
        return Ok(());
    }
    if let Some(d) = dst.parent() {
        std::fs::create_dir_all(d).map_err(|e| FixError::io(d, e))?;
    }
    std::os::unix::fs::symlink(src, dst).map_err(|e| FixError::io(dst, e))?;
    out.linked.push(src.to_path_buf());
    Ok(())
}

/// Copy staged, unstaged and untracked (not ignored) changes into the work
/// tree, but nothing under `skip` (see [`big_untracked`]).
fn copy_uncommitted(
    repo: &Repository,
    user_root: &Path,
    root: &Path,
    skip: &[String],
) -> Result<(), FixError> {
    let mut o = StatusOptions::new();
    o.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(true);
    let st = repo.statuses(Some(&mut o)).map_err(git_err("status"))?;
    for e in st.iter() {
        let Ok(rel) = e.path() else { continue };
        if skip.iter().any(|d| Path::new(rel).starts_with(d)) {
            continue;
        }
        let (src, dst) = (user_root.join(rel), root.join(rel));
        if let Ok(target) = std::fs::read_link(&src) {
            // A link stays a link (never the file or directory behind it).
            let _ = std::fs::remove_file(&dst);
            if let Some(d) = dst.parent() {
                std::fs::create_dir_all(d).map_err(|e| FixError::io(d, e))?;
            }
            std::os::unix::fs::symlink(&target, &dst).map_err(|e| FixError::io(&dst, e))?;
        } else if src.is_file() {
            if let Some(d) = dst.parent() {
                std::fs::create_dir_all(d).map_err(|e| FixError::io(d, e))?;
            }
            std::fs::copy(&src, &dst).map_err(|e| FixError::io(&src, e))?;
        } else if !src.exists() && dst.is_file() {
            std::fs::remove_file(&dst).map_err(|e| FixError::io(&dst, e))?;
        }
    }
    Ok(())
}

/// Copy the user's ignored files into the work tree, under caps; never the
/// directories of [`NEVER_COPIED`]. Links are copied as links. The copies
/// stay ignored in the work copy, so no attempt commits them.
fn copy_ignored(
    repo: &Repository,
    user_root: &Path,
    root: &Path,
) -> Result<IgnoredFiles, FixError> {
    let mut o = StatusOptions::new();
    o.include_untracked(false)
        .include_ignored(true)
        .recurse_ignored_dirs(false)
        .exclude_submodules(true);
    let st = repo.statuses(Some(&mut o)).map_err(git_err("status"))?;
    let mut out = IgnoredFiles::default();
    let mut total = 0u64;
    let mut stack: Vec<String> = st
        .iter()
        .filter(|e| e.status().is_ignored())
        .filter_map(|e| e.path().ok().map(|p| p.trim_end_matches('/').to_string()))
        .collect();
    stack.sort();
    stack.reverse();
    while let Some(rel) = stack.pop() {
        let src = user_root.join(&rel);
        let Ok(meta) = src.symlink_metadata() else {
            continue;
        };
        let name = Path::new(&rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if meta.is_dir() {
            if name == "node_modules" {
                // The installed packages a JS test run needs: linked, and
                // read-only in the jail (see `linked`), never copied.
                link_in_place(&src, &root.join(&rel), &mut out)?;
                out.left_out
                    .push(format!("{rel}/ (used in place, read-only)"));
                continue;
            }
            if NEVER_COPIED.contains(&name.as_str()) || name.ends_with(".egg-info") {
                out.left_out.push(format!("{rel}/"));
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&src) else {
                continue;
            };
            let mut kids: Vec<String> = rd
                .flatten()
                .map(|e| format!("{rel}/{}", e.file_name().to_string_lossy()))
                .collect();
            kids.sort();
            stack.extend(kids.into_iter().rev());
            continue;
        }
        if out.copied.len() >= IGNORED_COUNT_CAP
            || meta.len() > IGNORED_FILE_CAP
            || total + meta.len() > IGNORED_TOTAL_CAP
        {
            out.left_out.push(rel);
            continue;
        }
        let dst = root.join(&rel);
        if dst.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(d) = dst.parent() {
            std::fs::create_dir_all(d).map_err(|e| FixError::io(d, e))?;
        }
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| FixError::io(&src, e))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(|e| FixError::io(&dst, e))?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| FixError::io(&src, e))?;
            total += meta.len();
        } else {
            continue;
        }
        out.copied.push(rel);
    }
    Ok(out)
}

/// Mirror a plain directory into the private snapshot repo and commit it.
fn snapshot_plain(dir: &Path, snap: &Path) -> Result<(), FixError> {
    let repo = match Repository::open(snap) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(snap).map_err(|e| FixError::io(snap, e))?;
            Repository::init(snap).map_err(git_err("init the snapshot repository"))?
        }
    };
    for entry in std::fs::read_dir(snap).map_err(|e| FixError::io(snap, e))? {
        let p = entry.map_err(|e| FixError::io(snap, e))?.path();
        if p.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        let r = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| FixError::io(&p, e))?;
    }
    copy_tree(dir, snap)?;
    let mut index = repo.index().map_err(git_err("index"))?;
    index
        .add_all(["*"], IndexAddOption::DEFAULT, None)
        .map_err(git_err("stage"))?;
    index.update_all(["*"], None).map_err(git_err("stage"))?;
    index.write().map_err(git_err("write index"))?;
    let tree_id = index.write_tree().map_err(git_err("write tree"))?;
    let tree = repo.find_tree(tree_id).map_err(git_err("tree"))?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let sig = signature()?;
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, "snapshot", &tree, &parents)
        .map_err(git_err("commit the snapshot"))?;
    Ok(())
}

/// Copy a plain directory's files (not its links) into `to`: what its own
/// `.gitignore` and `.ignore` files leave in, and never the directories of
/// [`NEVER_COPIED`] (dependency trees, build output, caches).
fn copy_tree(from: &Path, to: &Path) -> Result<(), FixError> {
    let walk = ignore::WalkBuilder::new(from)
        .standard_filters(false)
        .git_ignore(true)
        .ignore(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| {
            e.depth() == 0
                || !(e.file_type().is_some_and(|t| t.is_dir())
                    && NEVER_COPIED.contains(&e.file_name().to_string_lossy().as_ref()))
        })
        .build();
    for entry in walk {
        let entry = entry.map_err(|e| FixError::io(from, std::io::Error::other(e.to_string())))?;
        let src = entry.path();
        let Ok(rel) = src.strip_prefix(from) else {
            continue;
        };
        let dst = to.join(rel);
        match entry.file_type() {
            Some(t) if t.is_dir() => {
                std::fs::create_dir_all(&dst).map_err(|e| FixError::io(&dst, e))?;
            }
            Some(t) if t.is_file() => {
                std::fs::copy(src, &dst).map_err(|e| FixError::io(src, e))?;
            }
            _ => {}
        }
    }
    Ok(())
}

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

fn open_store(path: &Path) -> Result<(Store, Repository), FixError> {
    let store = locate(path)?;
    let repo = Repository::open(&store.repo_path).map_err(git_err("open repository"))?;
    Ok((store, repo))
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

/// Delete session `id`'s branch and its `refs/selfrepair/<id>/*` refs;
/// how many refs that was (with `dry_run`, would be).
fn delete_refs(repo: &Repository, id: &str, dry_run: bool) -> Result<usize, FixError> {
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
fn age_of_stamp(stamp: &str) -> Option<u64> {
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
