//! Helpers shared by the integration tests that run the real `longtail` binary.

pub mod server;
pub mod tiny;

use std::path::Path;
use std::process::{Command, Output};

/// The built binary, with any `LONGTAIL_*` settings of the developer's shell removed.
pub fn longtail() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_longtail"));
    for (key, _) in std::env::vars() {
        if key.starts_with("LONGTAIL_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `cmd` and fails the test, showing its output, unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run longtail");
    assert!(
        out.status.success(),
        "longtail failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `longtail score --checkpoint CKPT --input INPUT --output OUTPUT EXTRA...`, not yet run.
#[allow(dead_code)] // the score tests' alone
pub fn score_command(ckpt: &Path, input: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut cmd = longtail();
    cmd.arg("score")
        .arg("--checkpoint")
        .arg(ckpt)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(extra);
    cmd
}
