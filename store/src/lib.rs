//! selfrepair's files on disk, for every crate of it: where the cache
//! lives, atomic writes, cross-process locks, and pinned downloads (sha256
//! checked before a file is kept, with a progress bar), PyPI lookups and
//! wheel extraction.

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot fetch {what} from {url}: {reason}")]
    Fetch {
        what: String,
        url: String,
        reason: String,
    },
    #[error(
        "checksum mismatch for {path}: expected sha256 {expected}, got {actual}; the file was not used"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path} is unusable: {reason}")]
    Archive { path: PathBuf, reason: String },
    #[error("cannot build an HTTP client: {0}")]
    Http(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `SELFREPAIR_HOME` if set, else the XDG cache dir (`~/.cache/selfrepair`).
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("SELFREPAIR_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("selfrepair")
}

/// Write `bytes` to `path` atomically (temp file + rename), creating parents.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// An exclusive advisory lock on a file, released when it is dropped (the
/// file closes); serialises concurrent fetches and builds of the same
/// artefact across processes.
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    pub fn acquire(path: &std::path::Path) -> std::io::Result<FileLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        f.lock()?;
        Ok(FileLock { _file: f })
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, StoreError> {
    let mut f = std::fs::File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| StoreError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// sha256 of a file this crate built into its own cache, where the hash is a
/// cache key rather than an integrity check: remembered beside the file in
/// `<name>.sha256` with the size and mtime it was computed for, and computed
/// again when either differs. Hashing the 20 MB fast component took a fifth
/// of a short `selfrepair eval`'s start.
pub fn sha256_file_remembered(path: &Path) -> Result<String, StoreError> {
    let meta = std::fs::metadata(path).map_err(|e| StoreError::io(path, e))?;
    let stamp = format!(
        "{} {}",
        meta.len(),
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    );
    let mut side = path.as_os_str().to_owned();
    side.push(".sha256");
    let side = std::path::PathBuf::from(side);
    if let Ok(text) = std::fs::read_to_string(&side)
        && let Some((sha, rest)) = text.trim_end().split_once(' ')
        && rest == stamp
        && sha.len() == 64
    {
        return Ok(sha.to_string());
    }
    let sha = sha256_file(path)?;
    // Only a speed-up: a cache dir we cannot write to just hashes again next time.
    let _ = write_atomic(&side, format!("{sha} {stamp}\n").as_bytes());
    Ok(sha)
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An error with its causes, e.g. "error sending request: ... invalid certificate".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn client() -> Result<reqwest::Client, StoreError> {
    reqwest::Client::builder()
        .user_agent(concat!("selfrepair/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| StoreError::Http(e.to_string()))
}

/// Find a release file's URL on PyPI (see [`pypi_release_file`]).
pub async fn pypi_file_url(
    index: &str,
    package: &str,
    version: &str,
    filename: &str,
) -> Result<String, StoreError> {
    Ok(pypi_release_file(index, package, version, filename)
        .await?
        .url)
}

/// Download `url` to `dest`, showing a progress bar, and keep it only if its
/// sha256 equals `sha256`. Nothing is left at `dest` on failure.
pub async fn download(
    url: &str,
    dest: &Path,
    sha256: &str,
    what: &str,
    progress: bool,
) -> Result<(), StoreError> {
    let bar = if progress {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(bar_style());
    bar.set_message(format!("fetching {what}"));
    download_with(url, dest, sha256, what, &bar, true).await?;
    bar.finish_and_clear();
    Ok(())
}

/// The style of every download bar.
pub fn bar_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// [`download`] advancing `bar`, which may span several files; with
/// `own_length` the bar's length is set from this response.
pub async fn download_with(
    url: &str,
    dest: &Path,
    sha256: &str,
    what: &str,
    bar: &indicatif::ProgressBar,
    own_length: bool,
) -> Result<(), StoreError> {
    let fetch_err = |reason: String| StoreError::Fetch {
        what: what.into(),
        url: url.into(),
        reason,
    };
    let resp = client()?
        .get(url)
        .send()
        .await
        .map_err(|e| fetch_err(chain(&e)))?;
    if !resp.status().is_success() {
        return Err(fetch_err(format!("HTTP {}", resp.status())));
    }
    if own_length {
        bar.set_length(resp.content_length().unwrap_or(0));
    }
    let dir = dest.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| StoreError::io(dir, e))?;
    let mut hasher = Sha256::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| fetch_err(chain(&e)))?;
        hasher.update(&chunk);
        tmp.write_all(&chunk)
            .map_err(|e| StoreError::io(tmp.path(), e))?;
        bar.inc(chunk.len() as u64);
    }
    let actual = hex::encode(hasher.finalize());
    if actual != sha256 {
        return Err(StoreError::Checksum {
            path: dest.to_path_buf(),
            expected: sha256.into(),
            actual,
        });
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| StoreError::io(tmp.path(), e))?;
    tmp.persist(dest)
        .map_err(|e| StoreError::io(dest, e.error))?;
    Ok(())
}

/// A release file as PyPI's JSON API lists it.
#[derive(Clone, Debug)]
pub struct PypiFile {
    pub url: String,
    pub size: u64,
}

/// Look `filename` up in PyPI's JSON API for `package==version`: the
/// release's own document, else the project's (some mirrors serve only that),
/// else the Simple API (PEP 691 JSON).
pub async fn pypi_release_file(
    index: &str,
    package: &str,
    version: &str,
    filename: &str,
) -> Result<PypiFile, StoreError> {
    let base = index.trim_end_matches('/');
    let http = client()?;
    let mut reasons = Vec::new();
    let tries = [
        (format!("{base}/pypi/{package}/{version}/json"), "/urls"),
        (
            format!("{base}/pypi/{package}/json"),
            &*format!("/releases/{version}"),
        ),
        (format!("{base}/simple/{package}/"), "/files"),
    ];
    for (url, pointer) in &tries {
        let r = match http
            .get(url)
            .header("Accept", "application/vnd.pypi.simple.v1+json")
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                reasons.push(format!("{url}: HTTP {}", r.status()));
                continue;
            }
            Err(e) => {
                reasons.push(format!("{url}: {}", chain(&e)));
                continue;
            }
        };
        let v: serde_json::Value = match r.json().await {
            Ok(v) => v,
            Err(e) => {
                reasons.push(format!("{url}: {}", chain(&e)));
                continue;
            }
        };
        let found = v
            .pointer(pointer)
            .and_then(|files| files.as_array())
            .into_iter()
            .flatten()
            .find(|f| f["filename"].as_str() == Some(filename))
            .and_then(|f| {
                // Mirrors may list URLs relative to the document.
                let href = f["url"].as_str()?;
                let url = reqwest::Url::parse(url).ok()?.join(href).ok()?;
                Some(PypiFile {
                    url: url.to_string(),
                    size: f["size"].as_u64().unwrap_or(0),
                })
            });
        match found {
            Some(f) => return Ok(f),
            None => reasons.push(format!("{url} does not list {filename}")),
        }
    }
    Err(StoreError::Fetch {
        what: format!("{package}=={version}"),
        url: tries[0].0.clone(),
        reason: reasons.join("; "),
    })
}

/// Extract one member of a zip (a wheel) to `dest`, verifying its sha256.
pub fn extract_member(
    zip_path: &Path,
    member: &str,
    dest: &Path,
    sha256: Option<&str>,
) -> Result<(), StoreError> {
    let f = std::fs::File::open(zip_path).map_err(|e| StoreError::io(zip_path, e))?;
    let bad = |reason: String| StoreError::Archive {
        path: zip_path.to_path_buf(),
        reason,
    };
    let mut z = zip::ZipArchive::new(f).map_err(|e| bad(e.to_string()))?;
    let mut entry = z
        .by_name(member)
        .map_err(|e| bad(format!("no member {member}: {e}")))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    if let Some(expected) = sha256 {
        let actual = sha256_bytes(&bytes);
        if actual != expected {
            return Err(StoreError::Checksum {
                path: dest.to_path_buf(),
                expected: expected.into(),
                actual,
            });
        }
    }
    write_atomic(dest, &bytes).map_err(|e| StoreError::io(dest, e))
}

/// Extract every member of a zip under `dir`.
pub fn extract_all(zip_path: &Path, dir: &Path) -> Result<(), StoreError> {
    let f = std::fs::File::open(zip_path).map_err(|e| StoreError::io(zip_path, e))?;
    let mut z = zip::ZipArchive::new(f).map_err(|e| StoreError::Archive {
        path: zip_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    z.extract(dir).map_err(|e| StoreError::Archive {
        path: zip_path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_hash_follows_the_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("runner.wasm");
        std::fs::write(&f, b"first")?;
        let first = sha256_file_remembered(&f)?;
        assert_eq!(first, sha256_bytes(b"first"));
        let side = dir.path().join("runner.wasm.sha256");
        assert!(std::fs::read_to_string(&side)?.starts_with(&first));
        // Remembered: a forged sidecar with the right stamp is believed...
        let stamp = std::fs::read_to_string(&side)?[65..].to_string();
        std::fs::write(&side, format!("{} {stamp}", "0".repeat(64)))?;
        assert_eq!(sha256_file_remembered(&f)?, "0".repeat(64));
        // ...but a changed file (size or mtime) is hashed again.
        std::fs::write(&f, b"second, longer")?;
        assert_eq!(sha256_file_remembered(&f)?, sha256_bytes(b"second, longer"));
        // A sidecar that does not parse is ignored.
        std::fs::write(&side, "garbage")?;
        assert_eq!(sha256_file_remembered(&f)?, sha256_bytes(b"second, longer"));
        Ok(())
    }
}
