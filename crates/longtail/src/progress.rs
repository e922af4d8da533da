//! Progress bars for long jobs: items/s and ETA when the total is known, a spinner otherwise.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use longtail_progress::{Event, ReadInfo};

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

/// The display of every long command's [`longtail_progress::Event`]s: a bar per file read
/// (bytes, or rows when their total is known, with rows and rejects in the message), a bar
/// over training updates (loss, learning rate, examples/s), and messages and evaluations
/// printed above the bar. When stderr is not a terminal (CI, `nohup`, a log file) the bar is
/// invisible, so a plain progress line is printed every [`PLAIN_PROGRESS_EVERY`] instead.
pub struct ProgressDisplay {
    what: &'static str,
    /// What one training example is called (`samples`, `seq`, `pairs`).
    unit: &'static str,
    pb: Option<ProgressBar>,
    last_plain: Option<Instant>,
}

pub const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// For steps that only report messages (eval-rec's baselines, the plan search): each message
/// on its own indented line of stderr.
pub fn print_messages(event: Event<'_>) {
    if let Event::Message(m) = event {
        eprintln!("  {m}");
    }
}

impl ProgressDisplay {
    pub fn new(what: &'static str, unit: &'static str) -> Self {
        Self {
            what,
            unit,
            pb: None,
            last_plain: None,
        }
    }

    pub fn on_event(&mut self, event: Event<'_>) {
        match event {
            Event::ReadStart { file, bytes_total } => {
                self.finish();
                let name = file.file_name().map_or_else(
                    || self.what.to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                self.pb = Some(bytes_bar(bytes_total, &name));
            }
            Event::Read(info) => self.read(info),
            Event::ReadDone { .. } => self.finish(),
            Event::TrainStart {
                start_step,
                max_steps,
            } => {
                let pb = ProgressBar::new(max_steps).with_style(
                    ProgressStyle::with_template(&format!(
                        "{} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} steps ETA {{eta}} \
                         {{msg}}",
                        self.what
                    ))
                    .expect("valid template"),
                );
                pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
                pb.set_position(start_step);
                pb.reset_eta();
                self.pb = Some(pb);
            }
            Event::Step(info) => {
                let Some(pb) = &self.pb else { return };
                pb.set_position(info.step);
                let status = format!(
                    "loss {:.4} lr {:.2e} {:.1} {}/s",
                    info.loss, info.learning_rate, info.samples_per_second, self.unit
                );
                if pb.is_hidden()
                    && self
                        .last_plain
                        .is_none_or(|t| t.elapsed() >= PLAIN_PROGRESS_EVERY)
                {
                    self.last_plain = Some(Instant::now());
                    eprintln!(
                        "step {}/{} {status} elapsed {}s ETA {}s",
                        info.step,
                        info.max_steps,
                        pb.elapsed().as_secs(),
                        pb.eta().as_secs()
                    );
                }
                pb.set_message(status);
            }
            Event::Eval {
                step,
                metrics,
                improved,
            } => {
                let text: Vec<String> =
                    metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                let best = if improved { " *" } else { "" };
                self.message(&format!("step {step}: {}{best}", text.join(", ")));
            }
            Event::Message(m) => self.message(m),
        }
    }

    fn read(&mut self, r: &ReadInfo<'_>) {
        let pb = self.pb.get_or_insert_with(|| match r.rows_total {
            Some(n) => bar(Some(n), self.what),
            None => bytes_bar(r.bytes_total.filter(|_| r.bytes > 0), self.what),
        });
        pb.set_position(if r.rows_total.is_some() || r.bytes == 0 {
            r.rows
        } else {
            r.bytes
        });
        pb.set_message(format!("{} rows, {} rejected", r.rows, r.rejected));
        if pb.is_hidden()
            && self
                .last_plain
                .is_none_or(|t| t.elapsed() >= PLAIN_PROGRESS_EVERY)
        {
            self.last_plain = Some(Instant::now());
            eprintln!(
                "{}: {} rows, {} rejected, {} of {} bytes, elapsed {}s",
                r.file.display(),
                r.rows,
                r.rejected,
                r.bytes,
                r.bytes_total.map_or("?".into(), |b| b.to_string()),
                pb.elapsed().as_secs()
            );
        }
    }

    fn message(&self, message: &str) {
        match &self.pb {
            Some(pb) => pb.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }

    pub fn finish(&mut self) {
        if let Some(pb) = self.pb.take() {
            pb.finish_and_clear();
        }
    }
}
