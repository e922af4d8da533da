//! longtail-testutil: test-only helpers (a dev-dependency, never linked into the product).
//!
//! cargo hides what passing tests print, so a test that returns early because a model, a data
//! set or a Python package is missing looks exactly like a pass. [`skip!`] makes it visible:
//! it prints `SKIPPED <package> <test>: <reason>` and, when the environment variable
//! [`SKIP_LOG_ENV`] (`LONGTAIL_TEST_SKIP_LOG`) names a file, appends that line to it. `make test`
//! points it at a fresh file and prints the list at the end.
//!
//! ```no_run
//! # fn base_model() -> Option<std::path::PathBuf> { None }
//! let Some(dir) = base_model() else {
//!     return longtail_testutil::skip!("base model not found (run make setup)");
//! };
//! ```

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;

/// Names the file that collects one line per skip.
pub const SKIP_LOG_ENV: &str = "LONGTAIL_TEST_SKIP_LOG";

/// Records that the current test (or a part of it) did not run, and why; `format!` syntax.
/// The package is the calling crate's, the test is the current thread's name (libtest names
/// each test's thread after the test).
#[macro_export]
macro_rules! skip {
    ($($reason:tt)+) => {
        $crate::record_skip(env!("CARGO_PKG_NAME"), &format!($($reason)+))
    };
}

/// What [`skip!`] expands to.
pub fn record_skip(package: &str, reason: &str) {
    let log = std::env::var_os(SKIP_LOG_ENV);
    let line = skip_line(package, &current_test(), reason);
    eprintln!("SKIPPED {line}");
    if let Some(log) = log.filter(|l| !l.is_empty()) {
        append_line(Path::new(&log), &line);
    }
}

fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "<test on the main thread>".to_string(),
    }
}

/// One line per skip: `package test: reason`, the reason on one line.
fn skip_line(package: &str, test: &str, reason: &str) -> String {
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{package} {test}: {reason}")
}

/// Appends `line` with one `write` on a file opened for appending, so lines of tests running
/// in parallel do not interleave. A log that cannot be written fails the test: a skip that
/// is not listed would be invisible again.
fn append_line(log: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("cannot open the skip log {}: {e}", log.display()));
    file.write_all(format!("{line}\n").as_bytes())
        .unwrap_or_else(|e| panic!("cannot write the skip log {}: {e}", log.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_package_test_and_reason_and_accumulate() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("skips.txt");
        let line = skip_line("longtail-model", &current_test(), "no base\n  model");
        assert_eq!(
            line,
            "longtail-model tests::lines_name_package_test_and_reason_and_accumulate: no base model"
        );
        append_line(&log, &line);
        append_line(&log, "second");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!("{line}\nsecond\n")
        );
    }

    #[test]
    #[should_panic(expected = "cannot open the skip log")]
    fn an_unwritable_log_fails_the_test() {
        append_line(Path::new("/nonexistent-dir/for/sure/skips.txt"), "x");
    }
}
pub mod postgres;
