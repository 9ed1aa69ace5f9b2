//! Enums picked by name (a flag, a config value): each variant's name and
//! one-line help, for whichever front end lists and parses them. The
//! library stays free of any command-line parser.

pub trait Choice: Copy + PartialEq + Send + Sync + 'static {
    /// Every variant, with its name and help, in the order to list them.
    const ALL: &'static [(Self, &'static str, &'static str)];

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(v, ..)| *v == self)
            .map_or("", |(_, n, _)| n)
    }

    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n, _)| *n == s).map(|(v, ..)| *v)
    }
}
