//! Where runtimes, tools and compiled modules are cached.

use std::path::PathBuf;

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
