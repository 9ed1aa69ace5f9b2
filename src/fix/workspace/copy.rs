//! Filling a work copy: the user's uncommitted and ignored files under
//! caps, dependency trees linked in place, a plain directory's snapshot.

use super::*;

/// Copy staged, unstaged and untracked (not ignored) changes into the work
/// tree. Untracked directories that are dependency trees or too big to
/// snapshot are neither copied nor walked (`node_modules` is linked in
/// place); their paths, relative to the root, are returned.
///
/// One status pass that does not enter untracked directories, then one
/// inside the directories that are copied, so a large untracked tree is
/// never walked whole.
pub(super) fn copy_uncommitted(
    repo: &Repository,
    user_root: &Path,
    root: &Path,
    out: &mut IgnoredFiles,
) -> Result<Vec<String>, FixError> {
    let st = uncommitted(repo, None)?;
    let (mut big, mut dirs) = (Vec::new(), Vec::new());
    for e in st.iter() {
        let Ok(rel) = e.path() else { continue };
        let Some(dir) = rel.strip_suffix('/') else {
            copy_change(user_root, root, rel)?;
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
            dirs.push(dir.to_string());
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
    if !dirs.is_empty() {
        for e in uncommitted(repo, Some(&dirs))?.iter() {
            if let Ok(rel) = e.path() {
                copy_change(user_root, root, rel)?;
            }
        }
    }
    Ok(big)
}

/// The uncommitted changes, ignored files left out: the whole tree with
/// untracked directories as one entry each, or everything under `dirs`.
fn uncommitted<'r>(
    repo: &'r Repository,
    dirs: Option<&[String]>,
) -> Result<git2::Statuses<'r>, FixError> {
    let mut o = StatusOptions::new();
    o.include_untracked(true)
        .recurse_untracked_dirs(dirs.is_some())
        .include_ignored(false)
        .exclude_submodules(true)
        .disable_pathspec_match(true);
    for d in dirs.into_iter().flatten() {
        o.pathspec(format!("{d}/"));
    }
    repo.statuses(Some(&mut o)).map_err(git_err("status"))
}

/// Bring one changed path of the user's tree into the work tree: a link
/// stays a link (never the file or directory behind it), a file is copied,
/// a deleted file is deleted.
fn copy_change(user_root: &Path, root: &Path, rel: &str) -> Result<(), FixError> {
    let (src, dst) = (user_root.join(rel), root.join(rel));
    if let Ok(target) = std::fs::read_link(&src) {
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
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    /// Every kind of uncommitted change reaches the work tree; ignored files
    /// and big untracked trees do not, and a dependency tree is linked.
    #[test]
    fn uncommitted_changes_are_copied_and_big_trees_left_in_place() {
        let t = tempfile::tempdir().expect("tempdir");
        let (user, root) = (t.path().join("user"), t.path().join("root"));
        let repo = Repository::init(&user).expect("init");
        for (rel, text) in [
            ("a.txt", "a\n"),
            ("sub/b.txt", "b\n"),
            (".gitignore", "*.log\n"),
        ] {
            put(&user, rel, text);
            put(&root, rel, text);
        }
        let mut idx = repo.index().expect("index");
        idx.add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        idx.write().expect("write index");
        let tree = repo
            .find_tree(idx.write_tree().expect("tree"))
            .expect("tree");
        let sig = Signature::now("t", "t@example.com").expect("sig");
        repo.commit(Some("HEAD"), &sig, &sig, "base", &tree, &[])
            .expect("commit");

        put(&user, "a.txt", "a, edited\n");
        std::fs::remove_file(user.join("sub/b.txt")).expect("rm");
        put(&user, "staged.txt", "s\n");
        idx.add_path(Path::new("staged.txt")).expect("stage");
        idx.write().expect("write index");
        put(&user, "top.txt", "t\n");
        put(&user, "new/deep/c.txt", "c\n");
        put(&user, "more/d.txt", "d\n");
        put(&user, "new/deep/y.log", "ignored\n");
        put(&user, "x.log", "ignored\n");
        put(&user, "node_modules/dep/index.js", "1\n");
        for i in 0..=UNTRACKED_DIR_FILES {
            put(&user, &format!("bigdata/{i}.txt"), "x\n");
        }

        let mut out = IgnoredFiles::default();
        let big = copy_uncommitted(&repo, &user, &root, &mut out).expect("copy");
        assert_eq!(big, ["bigdata", "node_modules"]);
        assert_eq!(out.left_out.len(), 2, "{:?}", out.left_out);
        let read = |rel: &str| std::fs::read_to_string(root.join(rel)).ok();
        assert_eq!(read("a.txt").as_deref(), Some("a, edited\n"));
        assert_eq!(read("sub/b.txt"), None, "a deleted file stays deleted");
        assert_eq!(read("staged.txt").as_deref(), Some("s\n"));
        assert_eq!(read("top.txt").as_deref(), Some("t\n"));
        assert_eq!(read("new/deep/c.txt").as_deref(), Some("c\n"));
        assert_eq!(read("more/d.txt").as_deref(), Some("d\n"));
        assert_eq!(
            read("new/deep/y.log"),
            None,
            "ignored files are not uncommitted changes"
        );
        assert_eq!(read("x.log"), None);
        assert!(!root.join("bigdata").exists());
        let link = std::fs::read_link(root.join("node_modules")).expect("node_modules linked");
        assert_eq!(link, user.join("node_modules"));
    }
}
