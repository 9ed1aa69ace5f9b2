//! Which of a dataset's tasks a run covers: a selection by index (`--tasks
//! 0-19`), then one shard of it (`--shard I/N`), so shards of one selection
//! cover it exactly once.

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("--tasks {spec}: '{part}' is not an index or a range")]
    NotARange { spec: String, part: String },
    #[error("--tasks {spec}: the range '{part}' is empty")]
    EmptyRange { spec: String, part: String },
    #[error(
        "--tasks {spec}: index {index} is out of range (the dataset has {total} tasks, 0-{last})"
    )]
    OutOfRange {
        spec: String,
        index: usize,
        total: usize,
        last: usize,
    },
    #[error("the task selection is empty")]
    Empty,
    #[error("--shard {0}: expected I/N with 0 <= I < N, e.g. 0/4")]
    BadShard(String),
    #[error("shard {i}/{n} has no tasks: the selection is smaller than {n}")]
    EmptyShard { i: u32, n: u32 },
}

/// `0-19`, `3,7,10-12` → sorted unique indices.
fn parse_ranges(spec: &str) -> Result<Vec<usize>, SelectError> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let bad = || SelectError::NotARange {
            spec: spec.to_string(),
            part: part.to_string(),
        };
        let a: usize = a.parse().map_err(|_| bad())?;
        let b: usize = b.parse().map_err(|_| bad())?;
        if b < a {
            return Err(SelectError::EmptyRange {
                spec: spec.to_string(),
                part: part.to_string(),
            });
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// `I/N` → (I, N), with 0 <= I < N.
pub fn parse_shard(s: &str) -> Result<(u32, u32), SelectError> {
    let bad = || SelectError::BadShard(s.to_string());
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// The tasks a run covers: those at the indices in `ranges` (all when None),
/// in dataset order, then of those every N-th from I for shard `(I, N)`.
pub fn select<T>(
    all: Vec<T>,
    ranges: Option<&str>,
    shard: Option<(u32, u32)>,
) -> Result<Vec<T>, SelectError> {
    let total = all.len();
    let mut picked: Vec<T> = match ranges {
        Some(spec) => {
            let idx = parse_ranges(spec)?;
            if let Some(&index) = idx.iter().find(|&&i| i >= total) {
                return Err(SelectError::OutOfRange {
                    spec: spec.to_string(),
                    index,
                    total,
                    last: total.saturating_sub(1),
                });
            }
            all.into_iter()
                .enumerate()
                .filter(|(i, _)| idx.binary_search(i).is_ok())
                .map(|(_, t)| t)
                .collect()
        }
        None => all,
    };
    if picked.is_empty() {
        return Err(SelectError::Empty);
    }
    if let Some((i, n)) = shard {
        picked = picked
            .into_iter()
            .enumerate()
            .filter(|(k, _)| *k as u32 % n == i)
            .map(|(_, t)| t)
            .collect();
        if picked.is_empty() {
            return Err(SelectError::EmptyShard { i, n });
        }
    }
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_ranges("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_ranges("5,1-2,2").unwrap(), vec![1, 2, 5]);
        assert!(
            parse_ranges("3-1")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(parse_ranges("a").is_err());
        assert_eq!(parse_shard("1/4").unwrap(), (1, 4));
        assert!(parse_shard("4/4").is_err());
        assert!(parse_shard("1/0").is_err());
    }

    #[test]
    fn shards_split_the_selection_exactly_once() {
        let all: Vec<usize> = (0..20).collect();
        let picked = select(all.clone(), Some("12-19, 3,5"), None).unwrap();
        assert_eq!(picked, vec![3, 5, 12, 13, 14, 15, 16, 17, 18, 19]);
        let shards: Vec<Vec<usize>> = (0..3)
            .map(|i| select(all.clone(), Some("12-19,3,5"), Some((i, 3))).unwrap())
            .collect();
        assert_eq!(shards[0], vec![3, 13, 16, 19]);
        assert_eq!(shards[1], vec![5, 14, 17]);
        assert_eq!(shards[2], vec![12, 15, 18]);
        assert_eq!(
            select(all.clone(), None, Some((1, 8))).unwrap(),
            vec![1, 9, 17]
        );

        let e = select(all.clone(), Some("19-20"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--tasks 19-20: index 20 is out of range (the dataset has 20 tasks, 0-19)"
        );
        assert!(matches!(
            select(all.clone(), Some(""), None),
            Err(SelectError::Empty)
        ));
        assert!(matches!(
            select(all, Some("0-1"), Some((2, 3))),
            Err(SelectError::EmptyShard { i: 2, n: 3 })
        ));
    }
}
