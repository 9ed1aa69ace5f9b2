//! The dataset manifest (`tasks/datasets.toml`, embedded at build time).

use super::TaskError;
use serde::{Deserialize, Serialize};

const MANIFEST: &str = include_str!("../../tasks/datasets.toml");

/// How a dataset's files are laid out, i.e. which loader reads them.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    #[serde(rename = "humaneval")]
    HumanEval,
    #[serde(rename = "evalplus-humaneval")]
    EvalplusHumanEval,
    Mbpp,
    MbppSanitized,
    EvalplusMbpp,
    /// APPS' original layout: one folder per problem.
    Apps,
    /// MapCoder's `selected150.jsonl`.
    AppsSelected,
}

impl Format {
    /// evalplus sets report `base` and `plus` separately.
    pub fn is_evalplus(self) -> bool {
        matches!(self, Format::EvalplusHumanEval | Format::EvalplusMbpp)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub name: String,
    pub title: String,
    pub format: Format,
    /// Folder under the data dir (or the cache's `datasets/`).
    pub dir: String,
    /// The one file, or None for a folder-per-task layout.
    #[serde(default)]
    pub file: Option<String>,
    pub url: String,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub records: Option<usize>,
    pub license: String,
}

impl Dataset {
    /// The path relative to the data dir.
    pub fn rel_path(&self) -> String {
        match &self.file {
            Some(f) => format!("{}/{}", self.dir, f),
            None => self.dir.clone(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    pub dataset: Vec<Dataset>,
}

impl Manifest {
    pub fn builtin() -> Result<Manifest, TaskError> {
        toml::from_str(MANIFEST).map_err(|e| TaskError::Manifest(e.to_string()))
    }

    /// A dataset by name; `humaneval-plus`/`mbpp-plus`/`humanevalplus` also work.
    pub fn get(&self, name: &str) -> Result<&Dataset, TaskError> {
        let norm = name
            .to_ascii_lowercase()
            .replace("plus", "+")
            .replace("-+", "+");
        self.dataset
            .iter()
            .find(|d| d.name == norm || d.name == name)
            .ok_or_else(|| TaskError::UnknownDataset(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_resolves_aliases() {
        let m = Manifest::builtin().expect("manifest");
        assert_eq!(
            m.get("humaneval+").map(|d| d.format).ok(),
            Some(Format::EvalplusHumanEval)
        );
        assert_eq!(
            m.get("mbpp-plus").map(|d| d.name.as_str()).ok(),
            Some("mbpp+")
        );
        assert_eq!(
            m.get("HumanEvalPlus").map(|d| d.name.as_str()).ok(),
            Some("humaneval+")
        );
        assert!(m.get("nope").is_err());
        for d in &m.dataset {
            if d.file.is_some() {
                assert_eq!(d.sha256.as_ref().map(|s| s.len()), Some(64), "{}", d.name);
            }
        }
    }
}
