//! Why a row was rejected.

use serde::{Deserialize, Serialize};

/// Reason codes written before the colon in `rejects.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// A blank (or whitespace-only) line.
    EmptyLine,
    /// Longer than the configured maximum line length.
    LineTooLong,
    /// Bytes that are not valid UTF-8.
    InvalidUtf8,
    /// Truncated or otherwise unparsable JSON.
    InvalidJson,
    /// Valid JSON that is not an object.
    NotAnObject,
    /// A CSV row with more or fewer fields than the header.
    WrongColumnCount,
    /// A CSV quoted field that is never closed.
    InvalidCsv,
    /// The id field is absent, empty or not a string/number.
    MissingId,
    /// An item id already seen earlier in the catalogue (the first is kept).
    DuplicateId,
    /// An interaction naming an item that is not in the catalogue.
    UnknownItem,
    /// A timestamp that is absent or cannot be parsed.
    InvalidTimestamp,
}

impl RejectReason {
    /// The kebab-case code, e.g. `"line-too-long"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::EmptyLine => "empty-line",
            Self::LineTooLong => "line-too-long",
            Self::InvalidUtf8 => "invalid-utf8",
            Self::InvalidJson => "invalid-json",
            Self::NotAnObject => "not-an-object",
            Self::WrongColumnCount => "wrong-column-count",
            Self::InvalidCsv => "invalid-csv",
            Self::MissingId => "missing-id",
            Self::DuplicateId => "duplicate-id",
            Self::UnknownItem => "unknown-item",
            Self::InvalidTimestamp => "invalid-timestamp",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A rejected row: where it was and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// 1-based line number, counted like [`super::Record::line`].
    pub line: u64,
    pub reason: RejectReason,
    /// Human-readable detail (never the whole offending row).
    pub detail: String,
}

impl Reject {
    pub fn new(line: u64, reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            line,
            reason,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.code(), self.detail)
    }
}

/// Shortens user data quoted in a reject detail so one bad row cannot blow
/// up the rejects file.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kebab_case_and_match_serde() {
        let all = [
            RejectReason::EmptyLine,
            RejectReason::LineTooLong,
            RejectReason::InvalidUtf8,
            RejectReason::InvalidJson,
            RejectReason::NotAnObject,
            RejectReason::WrongColumnCount,
            RejectReason::InvalidCsv,
            RejectReason::MissingId,
            RejectReason::DuplicateId,
            RejectReason::UnknownItem,
            RejectReason::InvalidTimestamp,
        ];
        for r in all {
            let code = r.code();
            assert!(code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit()));
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(code));
        }
        let rej = Reject::new(3, RejectReason::EmptyLine, "blank line");
        assert_eq!(rej.to_string(), "empty-line: blank line");
    }

    #[test]
    fn excerpt_truncates_long_values() {
        assert_eq!(excerpt("abc"), "abc");
        let long = "é".repeat(200);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), 81);
        assert!(e.ends_with('…'));
    }
}
