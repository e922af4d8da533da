//! The model thread and its queue, as text-embeddings-inference's: one thread owns a
//! [`Backend`]; requests reach it through one channel. Scoring requests waiting together run
//! as one batch under a token budget, so concurrent callers share forward passes; any other
//! work comes as a [`Job`] and runs alone. The queue knows no model.
//!
//! Read-only work whose caller has gone is skipped; a panic fails its own request only (the
//! thread goes on); the queue depth is a metric; the alive flag drops when the thread ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::error::{Result, ServeError};
use crate::metrics::Metrics;

/// A place in the model thread's queue (the 429 admission), held until the job is done, so
/// a request whose caller left (408, closed socket) still counts until it leaves the queue.
pub type Permit = tokio::sync::OwnedSemaphorePermit;

type Reply<T> = oneshot::Sender<Result<T>>;
type Answer<T> = oneshot::Receiver<Result<T>>;

/// Work for the model thread other than scoring: it runs alone, with the backend to itself.
pub trait Job<B>: Send {
    /// What the work serves, for the log when it panics.
    fn what(&self) -> &'static str;
    /// Running it would only burn the model thread: read-only work whose caller is gone.
    fn abandoned(&self) -> bool;
    /// Does the work and sends its answer to the caller.
    fn run(self: Box<Self>, backend: &mut B);
}

/// A [`Job`] made of a closure and its caller's reply.
struct Call<F, T> {
    what: &'static str,
    /// Read-only work may be skipped once its caller left; a write always runs (whatever
    /// its caller committed elsewhere must reach the backend too).
    read_only: bool,
    reply: Reply<T>,
    work: F,
}

impl<B, T, F> Job<B> for Call<F, T>
where
    T: Send,
    F: FnOnce(&mut B) -> Result<T> + Send,
{
    fn what(&self) -> &'static str {
        self.what
    }

    fn abandoned(&self) -> bool {
        self.read_only && self.reply.is_closed()
    }

    fn run(self: Box<Self>, backend: &mut B) {
        let Call { reply, work, .. } = *self;
        let _ = reply.send(work(backend));
    }
}

enum Work<B: Backend> {
    Score(Vec<B::Input>, Reply<Vec<B::Scored>>),
    Job(Box<dyn Job<B>>),
}

impl<B: Backend> Work<B> {
    /// Scoring is read-only: it is skipped once its caller is gone.
    fn abandoned(&self) -> bool {
        match self {
            Work::Score(_, reply) => reply.is_closed(),
            Work::Job(job) => job.abandoned(),
        }
    }
}

struct Envelope<B: Backend> {
    work: Work<B>,
    permit: Option<Permit>,
}

/// One scoring request as the batcher holds it: its rows, where the answer goes, its place.
type Waiting<B> = (
    Vec<<B as Backend>::Row>,
    Reply<Vec<<B as Backend>::Scored>>,
    Option<Permit>,
);

/// The handle to the model thread.
pub struct Queue<B: Backend> {
    jobs: mpsc::Sender<Envelope<B>>,
    metrics: Arc<Metrics>,
    /// False once the model thread has stopped.
    alive: Arc<AtomicBool>,
}

impl<B: Backend> Clone for Queue<B> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
            metrics: self.metrics.clone(),
            alive: self.alive.clone(),
        }
    }
}

impl<B: Backend> Queue<B> {
    /// Starts the model thread with `backend`. Scoring requests waiting together are batched
    /// up to `max_batch_tokens` tokens. The thread ends once every handle is dropped.
    pub fn start(
        backend: B,
        max_batch_tokens: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel();
        let alive = Arc::new(AtomicBool::new(true));
        let (m, a) = (metrics.clone(), alive.clone());
        let handle = std::thread::Builder::new()
            .name("model".into())
            .spawn(move || {
                // Set on every way out, a panic that escapes included.
                struct Stopped(Arc<AtomicBool>);
                impl Drop for Stopped {
                    fn drop(&mut self) {
                        self.0.store(false, Ordering::SeqCst);
                    }
                }
                let _stopped = Stopped(a);
                run(backend, rx, max_batch_tokens.max(1), &m)
            })?;
        Ok((
            Self {
                jobs: tx,
                metrics,
                alive,
            },
            handle,
        ))
    }

    /// Whether the model thread runs.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// One answer per input, from a batch shared with the scoring requests waiting beside it.
    pub async fn score(
        &self,
        inputs: Vec<B::Input>,
        permit: Option<Permit>,
    ) -> Result<Vec<B::Scored>> {
        answer(self.send_score(inputs, permit)?).await
    }

    /// Runs `work` on the backend, unless the caller has left by its turn.
    pub async fn read<T: Send + 'static>(
        &self,
        what: &'static str,
        permit: Option<Permit>,
        work: impl FnOnce(&B) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let rx = self.send_job(what, true, permit, move |b: &mut B| work(b))?;
        answer(rx).await
    }

    /// Runs `work` on the backend, even if the caller leaves meanwhile.
    pub async fn write<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce(&mut B) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        answer(self.send_job(what, false, None, work)?).await
    }

    fn send_score(
        &self,
        inputs: Vec<B::Input>,
        permit: Option<Permit>,
    ) -> Result<Answer<Vec<B::Scored>>> {
        self.send(permit, |reply| Work::Score(inputs, reply))
    }

    fn send_job<T: Send + 'static>(
        &self,
        what: &'static str,
        read_only: bool,
        permit: Option<Permit>,
        work: impl FnOnce(&mut B) -> Result<T> + Send + 'static,
    ) -> Result<Answer<T>> {
        self.send(permit, |reply| {
            Work::Job(Box::new(Call {
                what,
                read_only,
                reply,
                work,
            }))
        })
    }

    /// Queues work; [`ServeError::NotReady`] once the model thread has stopped.
    fn send<T>(
        &self,
        permit: Option<Permit>,
        make: impl FnOnce(Reply<T>) -> Work<B>,
    ) -> Result<Answer<T>> {
        let (tx, rx) = oneshot::channel();
        self.metrics.queue_add(1);
        let envelope = Envelope {
            work: make(tx),
            permit,
        };
        if self.jobs.send(envelope).is_err() {
            self.metrics.queue_add(-1);
            return Err(ServeError::NotReady);
        }
        Ok(rx)
    }
}

/// The answer the model thread sends; a request that panicked there has none.
async fn answer<T>(rx: Answer<T>) -> Result<T> {
    rx.await.map_err(|_| {
        ServeError::Model("the request failed in the model thread (see the server log)".into())
    })?
}

/// Runs one job, catching a panic: the request fails (its caller gets an error), the panic is
/// counted and logged, and the thread goes on serving the others.
fn guarded(metrics: &Metrics, what: &str, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("longtail serve: a {what} request panicked in the model thread: {msg}");
        metrics.failure("panic");
    }
}

/// Test hook: `LONGTAIL_TEST_CRASH_AT=model-score` makes every scoring batch panic, so a test
/// can prove a panic costs one request, not the service.
fn crash_point(name: &str) {
    if std::env::var_os("LONGTAIL_TEST_CRASH_AT").is_some_and(|v| v == name) {
        panic!("crash point {name}");
    }
}

/// A scoring request's rows and their weight in tokens.
fn weigh<B: Backend>(backend: &B, inputs: &[B::Input]) -> (Vec<B::Row>, usize) {
    let rows: Vec<B::Row> = inputs.iter().map(|i| backend.row(i)).collect();
    let tokens = rows.iter().map(|r| backend.tokens(r)).sum();
    (rows, tokens)
}

/// The model thread's loop, until every handle is dropped.
fn run<B: Backend>(
    mut backend: B,
    rx: mpsc::Receiver<Envelope<B>>,
    budget: usize,
    metrics: &Metrics,
) {
    // Work taken off the queue while forming a batch, to run next in arrival order.
    let mut pending: VecDeque<Envelope<B>> = VecDeque::new();
    loop {
        // The place is released when this turn ends (with its batch, for scoring).
        let Envelope { work, permit } = match pending.pop_front() {
            Some(e) => e,
            None => match rx.recv() {
                Ok(e) => {
                    metrics.queue_add(-1);
                    e
                }
                Err(_) => return,
            },
        };
        if work.abandoned() {
            metrics.failure("abandoned");
            continue;
        }
        match work {
            Work::Score(inputs, reply) => {
                let mut batch: Vec<Waiting<B>> = Vec::new();
                let mut tokens = 0;
                guarded(metrics, "score", || {
                    let (rows, t) = weigh(&backend, &inputs);
                    tokens = t;
                    batch.push((rows, reply, permit));
                });
                while tokens < budget && !batch.is_empty() {
                    match rx.try_recv() {
                        Ok(Envelope {
                            work: Work::Score(inputs, reply),
                            permit,
                        }) => {
                            metrics.queue_add(-1);
                            if reply.is_closed() {
                                metrics.failure("abandoned");
                                continue;
                            }
                            guarded(metrics, "score", || {
                                let (rows, t) = weigh(&backend, &inputs);
                                tokens += t;
                                batch.push((rows, reply, permit));
                            });
                        }
                        Ok(other) => {
                            metrics.queue_add(-1);
                            pending.push_back(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() {
                    guarded(metrics, "score", || score_batch(&backend, batch, metrics));
                }
            }
            Work::Job(job) => {
                let what = job.what();
                guarded(metrics, what, || job.run(&mut backend));
            }
        }
    }
}

/// One forward pass over every waiting request's rows; each caller gets its own slice.
fn score_batch<B: Backend>(backend: &B, batch: Vec<Waiting<B>>, metrics: &Metrics) {
    crash_point("model-score");
    let sizes: Vec<usize> = batch.iter().map(|(r, _, _)| r.len()).collect();
    // The places are released when this function returns, the answers sent.
    let (rows, (replies, _places)): (Vec<Vec<B::Row>>, (Vec<_>, Vec<_>)) = batch
        .into_iter()
        .map(|(rows, reply, place)| (rows, (reply, place)))
        .unzip();
    let all: Vec<B::Row> = rows.into_iter().flatten().collect();
    metrics.observe_batch(all.len());
    match backend.score(&all) {
        Ok(scored) => {
            assert_eq!(scored.len(), all.len(), "the backend answers once per row");
            let mut scored = scored.into_iter();
            for (n, reply) in sizes.into_iter().zip(replies) {
                let _ = reply.send(Ok(scored.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone().into()));
            }
        }
    }
}

#[cfg(test)]
mod tests;
