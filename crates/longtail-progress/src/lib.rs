//! longtail-progress: what a long command reports while it runs, as one event type for all of
//! them (`prepare` and `score` reading files, `train` and `train-interest` updating weights,
//! `eval-rec`, `plan` and `--tune` measuring), so that one display (a bar with items/s and ETA,
//! or a plain line off a terminal) serves every command and a library needs no terminal.
//! Libraries take `&mut dyn FnMut(Event)` (or `&dyn Fn(Event)` where they report from
//! several places at once); [`ignore`] is the callback that shows nothing.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// One optimizer update, as a training loop reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Updates done, this one and a resumed checkpoint's included.
    pub step: u64,
    /// The update at which the run ends.
    pub max_steps: u64,
    /// The update this invocation started from (0, or a resumed checkpoint's step).
    pub start_step: u64,
    /// Epochs done, fractional.
    pub epoch: f64,
    /// Mean loss of the update's micro-batches.
    pub loss: f64,
    pub learning_rate: f64,
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// Training examples this invocation has consumed.
    pub samples: u64,
    /// `samples` over the time spent in updates (evaluation and checkpoint writes left out).
    pub samples_per_second: f64,
}

/// How far a file has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadInfo<'a> {
    pub file: &'a Path,
    /// Rows consumed so far (kept + rejected), earlier runs of a resumed job included.
    pub rows: u64,
    /// Rows to read, when known (a sharded score counts its rows).
    pub rows_total: Option<u64>,
    /// On-disk bytes consumed so far (0 for Parquet, which is not read as a byte stream).
    pub bytes: u64,
    /// The file's size on disk, when known.
    pub bytes_total: Option<u64>,
    /// Rows refused so far (each with its reason in a rejects file).
    pub rejected: u64,
}

/// A long command's progress.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Reading a file begins.
    ReadStart {
        file: &'a Path,
        bytes_total: Option<u64>,
    },
    /// Reading goes on (after every chunk or block of rows).
    Read(&'a ReadInfo<'a>),
    /// A file has been read completely.
    ReadDone { file: &'a Path, rows: u64 },
    /// A training loop is about to run updates `start_step + 1 ..= max_steps`.
    TrainStart { start_step: u64, max_steps: u64 },
    /// One optimizer update.
    Step(&'a StepInfo),
    /// An evaluation; `improved` when it is the best so far by the run's best-model metric.
    Eval {
        step: u64,
        metrics: &'a BTreeMap<String, f64>,
        improved: bool,
    },
    /// Anything worth a line: what was read, a choice made, a resume, early stopping.
    Message(&'a str),
}

/// The callback that shows nothing (tests, library callers without a display).
pub fn ignore(_: Event<'_>) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_what_a_display_needs() {
        let mut seen = Vec::new();
        let mut sink = |e: Event<'_>| {
            seen.push(match e {
                Event::Read(r) => format!("read {} of {:?}", r.rows, r.rows_total),
                Event::Message(m) => m.to_string(),
                other => format!("{other:?}"),
            })
        };
        let file = Path::new("items.jsonl");
        sink(Event::Read(&ReadInfo {
            file,
            rows: 10,
            rows_total: Some(20),
            bytes: 100,
            bytes_total: Some(200),
            rejected: 1,
        }));
        sink(Event::Message("done"));
        ignore(Event::ReadDone { file, rows: 20 });
        assert_eq!(seen, ["read 10 of Some(20)", "done"]);
    }
}
