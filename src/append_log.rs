//! Append-only JSONL logs: one JSON value per line, never rewritten. The run
//! store's `nodes.jsonl`, the model `transcript.jsonl` and eval's
//! `<SAMPLES>_results.jsonl` are all [`AppendLog`]s.
//!
//! Writing: one thread per open log writes whatever lines are queued as one
//! batch, then one `fsync` (group commit), so many writers share a sync.
//! [`AppendLog::append`] and [`AppendLog::sync`] return once the lines are on
//! disk. A failed write or sync stops the log: every later call reports it,
//! since what reached the disk is then unknown.
//!
//! Damage, one rule for opening and reading:
//! - a final line without its newline is a write cut short (a kill or crash
//!   mid-write; a line is acknowledged only once its newline is synced) and is
//!   dropped, even if it happens to parse; opening for append truncates the
//!   file to the last complete line first, so appends start on a clean line;
//! - any complete line, last or not, that does not parse is an error naming
//!   the file and the line: nothing we write ends that way, so it is not ours
//!   to discard.
//!
//! Blank lines are skipped. Before this module the three logs disagreed: the
//! run store and the transcript kept an unterminated last line that parsed
//! (eval dropped it), and the transcript writer appended after a torn line
//! without cutting it off.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Queued jobs the writer takes at most at once (bounds a batch's memory).
const MAX_BATCH: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AppendLogError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a valid entry: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: cannot encode an entry: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: the log's writer thread has stopped")]
    Stopped { path: PathBuf },
}

/// An open log of `T`s. Clones share the file and its writer thread, which
/// ends when the last clone is dropped (after writing what was queued).
pub(crate) struct AppendLog<T> {
    path: PathBuf,
    tx: mpsc::Sender<Job>,
    entries: PhantomData<fn(&T)>,
}

impl<T> Clone for AppendLog<T> {
    fn clone(&self) -> Self {
        AppendLog {
            path: self.path.clone(),
            tx: self.tx.clone(),
            entries: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for AppendLog<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendLog")
            .field("path", &self.path)
            .finish()
    }
}

enum Job {
    Line(String),
    /// Answered once every job queued before it is on disk.
    Sync(oneshot::Sender<Result<(), WriteFailure>>),
}

/// An I/O error the writer reports to every waiter (io::Error is not Clone).
#[derive(Clone, Debug)]
struct WriteFailure {
    kind: std::io::ErrorKind,
    message: String,
}

impl<T: Serialize + DeserializeOwned> AppendLog<T> {
    /// Open `path` for appending, creating it if missing, and return the
    /// entries already there. A torn last line is cut off first.
    pub(crate) fn open(path: &Path) -> Result<(AppendLog<T>, Vec<T>), AppendLogError> {
        let io = |source| AppendLogError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io)?;
        let scan = scan::<T>(path, &bytes)?;
        if scan.complete_len < bytes.len() {
            tracing::warn!(file = %path.display(), "dropping a partly written last line");
            file.set_len(scan.complete_len as u64).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("append-log".into())
            .spawn(move || write_loop(file, rx))
            .map_err(io)?;
        let log = AppendLog {
            path: path.to_path_buf(),
            tx,
            entries: PhantomData,
        };
        Ok((log, scan.entries))
    }
}

impl<T: Serialize> AppendLog<T> {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Queue one line; it is on disk after the next [`AppendLog::sync`].
    pub(crate) fn push(&self, entry: &T) -> Result<(), AppendLogError> {
        let mut line = serde_json::to_string(entry).map_err(|source| AppendLogError::Encode {
            path: self.path.clone(),
            source,
        })?;
        line.push('\n');
        self.tx.send(Job::Line(line)).map_err(|_| self.stopped())
    }

    /// Wait until every line queued so far, through any clone, is on disk.
    pub(crate) async fn sync(&self) -> Result<(), AppendLogError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Job::Sync(done)).map_err(|_| self.stopped())?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(f)) => Err(AppendLogError::Io {
                path: self.path.clone(),
                source: std::io::Error::new(f.kind, f.message),
            }),
            Err(_) => Err(self.stopped()),
        }
    }

    /// Write one line; returns once it is on disk.
    pub(crate) async fn append(&self, entry: &T) -> Result<(), AppendLogError> {
        self.push(entry)?;
        self.sync().await
    }

    fn stopped(&self) -> AppendLogError {
        AppendLogError::Stopped {
            path: self.path.clone(),
        }
    }
}

/// Runs until every handle is dropped and the queue is drained.
fn write_loop(mut file: File, rx: mpsc::Receiver<Job>) {
    let mut failed: Option<WriteFailure> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut waiters = Vec::new();
    while let Ok(first) = rx.recv() {
        buf.clear();
        let mut job = Some(first);
        let mut taken = 0;
        while let Some(j) = job {
            match j {
                Job::Line(line) => buf.extend_from_slice(line.as_bytes()),
                Job::Sync(done) => waiters.push(done),
            }
            taken += 1;
            job = if taken < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        // One write and one fsync for the whole batch; a batch of syncs only
        // has nothing new to sync, every earlier batch having been synced.
        if failed.is_none()
            && !buf.is_empty()
            && let Err(e) = file.write_all(&buf).and_then(|()| file.sync_data())
        {
            failed = Some(WriteFailure {
                kind: e.kind(),
                message: e.to_string(),
            });
        }
        let result = match &failed {
            None => Ok(()),
            Some(f) => Err(f.clone()),
        };
        for done in waiters.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}

/// Every entry of the log at `path`, by the rule in the module doc. The file
/// is not changed.
pub(crate) fn read_entries<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, AppendLogError> {
    let bytes = std::fs::read(path).map_err(|source| AppendLogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(scan(path, &bytes)?.entries)
}

struct Scan<T> {
    entries: Vec<T>,
    /// Bytes up to the end of the last complete line.
    complete_len: usize,
}

fn scan<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<Scan<T>, AppendLogError> {
    let mut entries = Vec::new();
    let mut complete_len = 0;
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if line.last() != Some(&b'\n') {
            // Only the last piece can lack its newline: a torn write.
            break;
        }
        complete_len += line.len();
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry = serde_json::from_slice(line).map_err(|e| AppendLogError::Corrupt {
            path: path.to_path_buf(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        entries.push(entry);
    }
    Ok(Scan {
        entries,
        complete_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Entry {
        n: u64,
        text: String,
    }

    fn entry(n: u64) -> Entry {
        Entry {
            n,
            text: format!("entry {n}: \"quoted\"\nand a newline"),
        }
    }

    fn line(n: u64) -> String {
        serde_json::to_string(&entry(n)).expect("encode") + "\n"
    }

    #[tokio::test]
    async fn entries_round_trip_through_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.jsonl");
        let (log, old) = AppendLog::<Entry>::open(&path).expect("open");
        assert!(old.is_empty());
        for n in 0..3 {
            log.append(&entry(n)).await.expect("append");
        }
        log.push(&entry(3)).expect("push");
        log.sync().await.expect("sync");
        drop(log);
        let want: Vec<Entry> = (0..4).map(entry).collect();
        assert_eq!(read_entries::<Entry>(&path).expect("read"), want);
        let (log, old) = AppendLog::<Entry>::open(&path).expect("reopen");
        assert_eq!(old, want);
        log.append(&entry(4)).await.expect("append");
        assert_eq!(read_entries::<Entry>(&path).expect("read").len(), 5);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_dropped_and_appends_continue_cleanly() {
        let whole = line(0) + &line(1);
        let third = line(2);
        let half = &third[..10];
        // Half a line; a whole entry but no newline; a cut mid character.
        let cut_utf8 = "{\"n\":2,\"text\":\"\u{e9}".as_bytes();
        let cut_utf8 = &cut_utf8[..cut_utf8.len() - 1];
        let tails: [&[u8]; 3] = [half.as_bytes(), third.trim_end().as_bytes(), cut_utf8];
        for tail in tails {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("log.jsonl");
            let mut bytes = whole.clone().into_bytes();
            bytes.extend_from_slice(tail);
            std::fs::write(&path, &bytes).expect("write");

            // Reading drops it and leaves the file alone.
            let read = read_entries::<Entry>(&path).expect("read");
            assert_eq!(read, vec![entry(0), entry(1)]);
            assert_eq!(std::fs::read(&path).expect("file"), bytes);

            // Reopening cuts it off; the next entry starts a clean line.
            let (log, old) = AppendLog::<Entry>::open(&path).expect("open");
            assert_eq!(old, vec![entry(0), entry(1)]);
            assert_eq!(std::fs::read_to_string(&path).expect("file"), whole);
            log.append(&entry(7)).await.expect("append");
            assert_eq!(
                std::fs::read_to_string(&path).expect("file"),
                whole.clone() + &line(7)
            );
            assert_eq!(
                read_entries::<Entry>(&path).expect("read"),
                vec![entry(0), entry(1), entry(7)]
            );
        }
    }

    #[test]
    fn a_corrupt_complete_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.jsonl");
        // Line 3 is damaged in the middle; then the same damage as the last
        // line (complete, so not a torn write); then valid JSON of the wrong shape.
        let cases = [
            (line(0) + "\n" + "{\"n\": 1, \"te\n" + &line(2), 3),
            (line(0) + &line(1) + "{\"n\": 1, \"te\n", 3),
            (line(0) + "[1, 2]\n" + &line(2), 2),
        ];
        for (text, bad) in cases {
            std::fs::write(&path, &text).expect("write");
            for err in [
                read_entries::<Entry>(&path).expect_err("read"),
                AppendLog::<Entry>::open(&path).expect_err("open"),
            ] {
                match &err {
                    AppendLogError::Corrupt { path: p, line, .. } => {
                        assert_eq!((p.as_path(), *line), (path.as_path(), bad));
                    }
                    other => panic!("expected a corrupt line, got {other:?}"),
                }
                let shown = err.to_string();
                assert!(
                    shown.starts_with(&format!("{}:{bad}: ", path.display())),
                    "{shown}"
                );
            }
            // Nothing was cut off.
            assert_eq!(std::fs::read_to_string(&path).expect("file"), text);
        }
    }

    #[test]
    fn concurrent_appends_all_land_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.jsonl");
        let (log, _) = AppendLog::<Entry>::open(&path).expect("open");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime");
        let (threads, per_thread) = (8u64, 200u64);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (log, rt) = (log.clone(), &rt);
                s.spawn(move || {
                    for i in 0..per_thread {
                        let n = t * per_thread + i;
                        // Both ways in: waited for each, and queued then synced.
                        if n % 2 == 0 {
                            rt.block_on(log.append(&entry(n))).expect("append");
                        } else {
                            log.push(&entry(n)).expect("push");
                        }
                    }
                    rt.block_on(log.sync()).expect("sync");
                });
            }
        });
        let text = std::fs::read_to_string(&path).expect("file");
        assert!(text.ends_with('\n'));
        let mut got: Vec<u64> = text
            .lines()
            .map(|l| {
                let e: Entry = serde_json::from_str(l).expect("each line whole");
                assert_eq!(e, entry(e.n));
                e.n
            })
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..threads * per_thread).collect::<Vec<_>>());
        // One thread's lines keep their order.
        let firsts: Vec<u64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
            .map(|e| e.n)
            .filter(|n| *n < per_thread)
            .collect();
        assert!(firsts.is_sorted());
    }
}
