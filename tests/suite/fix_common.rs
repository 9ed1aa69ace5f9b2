//! Helpers for the fix suites: example repos as real git repositories in
//! temp dirs, snapshots of a tree, and sessions run through the library.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use selfrepair::fix::{FixEvent, FixOptions, Repairer, Session, Summary};
use selfrepair::model::openai::OpenAiCompatible;
use selfrepair::model::{ApiKey, Client, ClientOptions};
use selfrepair_testkit::TestServer;
use tokio_util::sync::CancellationToken;

pub const FAKE_KEY: &str = "sk-test-FAKE-fix-0123456789";

pub fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tasks/examples")
        .join(name)
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            if e.file_name() == "target" || e.file_name() == "__pycache__" {
                continue;
            }
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// The example copied into `<tmp>/repo`, committed as the first commit.
pub fn example_repo(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    copy_tree(&example(name), &dir);
    git2::Repository::init(&dir).unwrap();
    commit_all(&dir, "initial");
    (tmp, dir)
}

/// Write `text` to `dir/rel`, making its directories.
pub fn put(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Stage everything in `dir` and commit it on HEAD.
pub fn commit_all(dir: &Path, message: &str) {
    let repo = git2::Repository::open(dir).unwrap();
    let mut idx = repo.index().unwrap();
    idx.add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    idx.write().unwrap();
    let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("dev", "dev@example.com").unwrap();
    let parent = repo.head().ok().map(|h| h.peel_to_commit().unwrap());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap();
}

/// Every file under `dir` (the .git directory's index and HEAD included,
/// its objects and refs not) with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if e.file_type().unwrap().is_dir() {
                if rel == Path::new(".git") {
                    for f in ["index", "HEAD"] {
                        if let Ok(b) = std::fs::read(p.join(f)) {
                            out.insert(rel.join(f), b);
                        }
                    }
                    continue;
                }
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

pub fn branches(dir: &Path) -> Vec<String> {
    let repo = git2::Repository::open(dir).unwrap();
    let mut v: Vec<String> = repo
        .branches(Some(git2::BranchType::Local))
        .unwrap()
        .map(|b| b.unwrap().0.name().unwrap().unwrap().to_string())
        .collect();
    v.sort();
    v
}

pub fn client(server: &TestServer) -> Arc<Client> {
    client_with(server, ClientOptions::default())
}

pub fn client_with(server: &TestServer, opts: ClientOptions) -> Arc<Client> {
    let p = OpenAiCompatible::new(
        "openai",
        "gpt-4o-mini",
        &server.openai_base(),
        Some(ApiKey::new(FAKE_KEY)),
        true,
    )
    .unwrap();
    Arc::new(Client::new(Arc::new(p), opts, None).unwrap())
}

/// Run a session through the library API, collecting its events.
pub async fn run(
    opts: FixOptions,
    repairer: Repairer,
    cancel: CancellationToken,
) -> (Result<Summary, selfrepair::fix::FixError>, Vec<FixEvent>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let on_event = move |e: &FixEvent| sink.lock().unwrap().push(e.clone());
    let r = Session::new(opts, repairer, cancel).run(&on_event).await;
    let ev = events.lock().unwrap().clone();
    (r, ev)
}

pub fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_selfrepair"));
    // No config or key from the developer's machine leaks into a test.
    c.env_remove("SELFREPAIR_MODEL")
        .env_remove("OPENAI_API_KEY")
        .env("XDG_CONFIG_HOME", "/nonexistent");
    c
}
