//! The queue with a fake backend (no model): batching, panic isolation, abandonment.

use std::sync::atomic::AtomicUsize;

use super::*;
use crate::backend::{ModelInfo, RecAnswer, RecRequest, Version};

/// A backend without a model: a row scores its length, every forward pass is counted,
/// and the input `panic` cannot be read.
struct Fake {
    batches: Arc<AtomicUsize>,
}

impl Backend for Fake {
    type Input = String;
    type Row = String;
    type Scored = usize;
    type Error = Arc<longtail_infer::InferError>;

    fn row(&self, input: &String) -> String {
        assert_ne!(input, "panic", "a row that cannot be read");
        input.clone()
    }

    fn tokens(&self, _: &String) -> usize {
        1
    }

    fn score(&self, rows: &[String]) -> std::result::Result<Vec<usize>, Self::Error> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        Ok(rows.iter().map(String::len).collect())
    }

    fn recommend(&self, request: &RecRequest) -> Result<RecAnswer> {
        Ok(RecAnswer {
            items: Vec::new(),
            history_len: request.history.as_ref().map_or(0, Vec::len),
        })
    }

    fn info(&self) -> ModelInfo {
        let version = Version {
            path: "fake".into(),
            weights_sha256: String::new(),
        };
        ModelInfo {
            classifier: version.clone(),
            classifier_precision: "fp32".into(),
            interest: version,
            data: "fake".into(),
            items: 0,
            added_items: 0,
            users_in_data: 0,
            plan: None,
        }
    }
}

struct Running {
    queue: Queue<Fake>,
    thread: JoinHandle<()>,
    batches: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

fn start(budget: usize) -> Running {
    let batches = Arc::new(AtomicUsize::new(0));
    let metrics = Arc::new(Metrics::default());
    let fake = Fake {
        batches: batches.clone(),
    };
    let (queue, thread) = Queue::start(fake, budget, metrics.clone()).unwrap();
    Running {
        queue,
        thread,
        batches,
        metrics,
    }
}

impl Running {
    /// Holds the model thread until `open` sends, so the work queued meanwhile waits
    /// together.
    fn hold(&self) -> (std::sync::mpsc::Sender<()>, Answer<()>) {
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let held = self
            .queue
            .send_job("hold", false, None, move |_| {
                let _ = gate.recv();
                Ok(())
            })
            .unwrap();
        (open, held)
    }

    fn score(&self, texts: &[&str]) -> Answer<Vec<usize>> {
        let inputs = texts.iter().map(|t| t.to_string()).collect();
        self.queue.send_score(inputs, None).unwrap()
    }

    fn batches(&self) -> usize {
        self.batches.load(Ordering::SeqCst)
    }

    /// Drops the last handle: the thread ends and says so.
    fn stop(self) {
        assert!(self.queue.is_alive());
        let alive = self.queue.alive.clone();
        drop(self.queue);
        self.thread.join().unwrap();
        assert!(!alive.load(Ordering::SeqCst), "the alive flag drops");
        assert!(self.metrics.render().contains("longtail_queue_size 0"));
    }
}

fn answered<T>(rx: Answer<T>) -> T {
    rx.blocking_recv().expect("an answer").expect("no error")
}

#[test]
fn score_requests_waiting_together_share_one_batch() {
    let q = start(100);
    let (open, held) = q.hold();
    let a = q.score(&["ab"]);
    let b = q.score(&["cde", "f"]);
    open.send(()).unwrap();
    answered(held);
    assert_eq!(answered(a), vec![2]);
    assert_eq!(answered(b), vec![3, 1]);
    assert_eq!(q.batches(), 1, "one forward pass for both");
    assert!(q.metrics.render().contains("longtail_batch_size_count 1"));
    q.stop();

    // A request that fills the token budget closes its batch.
    let q = start(1);
    let (open, held) = q.hold();
    let (a, b) = (q.score(&["ab"]), q.score(&["c"]));
    open.send(()).unwrap();
    answered(held);
    assert_eq!((answered(a), answered(b)), (vec![2], vec![1]));
    assert_eq!(q.batches(), 2);
    q.stop();
}

#[test]
fn a_panic_fails_only_its_own_request() {
    let q = start(100);
    let (open, held) = q.hold();
    let before = q.score(&["ab"]);
    let bad_row = q.score(&["panic"]);
    let after = q.score(&["xyz"]);
    let bad_job = q
        .queue
        .send_job("boom", true, None, |_| -> Result<()> {
            panic!("a job that panics")
        })
        .unwrap();
    let next = q.score(&["q"]);
    open.send(()).unwrap();
    answered(held);
    assert_eq!(answered(before), vec![2]);
    assert!(
        bad_row.blocking_recv().is_err(),
        "the panicking request fails"
    );
    assert_eq!(answered(after), vec![3], "its batch goes on");
    let err = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(answer(bad_job))
        .unwrap_err();
    assert_eq!((err.kind(), err.status().as_u16()), ("model", 500), "{err}");
    assert_eq!(answered(next), vec![1], "the thread goes on");
    assert_eq!(q.batches(), 2);
    assert!(q
        .metrics
        .render()
        .contains("longtail_failures_total{kind=\"panic\"} 2"));
    q.stop();
}

#[test]
fn read_only_work_whose_caller_left_is_skipped() {
    let q = start(100);
    let ran = Arc::new(AtomicUsize::new(0));
    let (open, held) = q.hold();
    let r = ran.clone();
    let read = q
        .queue
        .send_job("read", true, None, move |_| {
            r.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    drop(read);
    let live = q.score(&["ab"]);
    drop(q.score(&["gone"]));
    let w = ran.clone();
    let write = q
        .queue
        .send_job("write", false, None, move |_| {
            w.fetch_add(10, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    drop(write);
    let last = q.score(&["xyz"]);
    open.send(()).unwrap();
    answered(held);
    assert_eq!(answered(live), vec![2]);
    assert_eq!(answered(last), vec![3]);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        10,
        "the read skipped, the write run"
    );
    assert_eq!(q.batches(), 2, "the abandoned request joined no batch");
    assert!(q
        .metrics
        .render()
        .contains("longtail_failures_total{kind=\"abandoned\"} 2"));
    q.stop();
}
