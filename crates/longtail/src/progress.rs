//! Progress bars for long jobs: items/s and ETA when the total is known, a spinner otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar on stderr; hidden when stderr is not a terminal so logs stay clean.
pub fn bar(total: Option<u64>, what: &str) -> ProgressBar {
    let pb = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{msg:12} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {per_sec} ETA {eta}",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg:12} [{elapsed_precise}] {human_pos} {per_sec}")
                .expect("valid template"),
        ),
    };
    pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    pb.set_message(what.to_string());
    pb
}

/// A bar over the bytes of a file being read (rows are shown in the message).
pub fn bytes_bar(total_bytes: Option<u64>, what: &str) -> ProgressBar {
    let pb = match total_bytes {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{prefix:20} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("valid template"),
        ),
        None => bar(None, what),
    };
    pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    pb.set_prefix(what.to_string());
    pb
}
