//! Filling a work copy: the user's uncommitted and ignored files under
//! caps, dependency trees linked in place, a plain directory's snapshot.

use super::*;

/// Untracked (not ignored) directories that are dependency trees or too big
/// to snapshot: never copied nor committed; `node_modules` is linked in
/// place. Their paths, relative to the root.
pub(super) fn big_untracked(
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
pub(super) fn copy_uncommitted(
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
pub(super) fn copy_ignored(
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
pub(super) fn snapshot_plain(dir: &Path, snap: &Path) -> Result<(), FixError> {
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
