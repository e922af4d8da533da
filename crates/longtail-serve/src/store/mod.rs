//! The event store: feedback events, impressions (what was shown) and items added while
//! serving. SQLite (one file, WAL, `synchronous=FULL`) by default; PostgreSQL when several
//! replicas share one store. Both speak the same [`Backend`] trait and the same schema.
//!
//! One writer thread owns the write connection and commits in groups: it takes every write
//! waiting in its queue, runs them in one transaction, and answers each caller only after the
//! commit returned (so an acknowledged write is on disk). Reads go through their own
//! connection on a reader thread, so a long commit never blocks them behind it (SQLite's WAL
//! lets the reader see the last committed state).

mod postgres;
mod sqlite;

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::error::StoreError;

/// The columns both backends read, in the order their row decoders expect.
pub(crate) const EVENT_COLUMNS: &str = "seq, event_id, user_id, item_id, kind, ts, rec_id";
pub(crate) const ITEM_COLUMNS: &str = "seq, item_id, listing, p_tail, label, embedding, ts";

/// The tables and indexes, in the column types of a backend: its auto-numbered primary key,
/// its double and its byte-string types.
pub(crate) fn schema(serial_key: &str, double: &str, bytes: &str) -> String {
    format!(
        "
CREATE TABLE IF NOT EXISTS events (
    seq {serial_key},
    event_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts BIGINT NOT NULL,
    rec_id TEXT
);
CREATE INDEX IF NOT EXISTS events_user ON events (user_id, seq);
CREATE TABLE IF NOT EXISTS impressions (
    rec_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    items TEXT NOT NULL,
    ts BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS impressions_user ON impressions (user_id);
CREATE TABLE IF NOT EXISTS erased (
    user_id TEXT PRIMARY KEY,
    ts BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    seq {serial_key},
    item_id TEXT NOT NULL UNIQUE,
    listing TEXT NOT NULL,
    p_tail {double} NOT NULL,
    label TEXT NOT NULL,
    embedding {bytes} NOT NULL,
    ts BIGINT NOT NULL
);
"
    )
}

/// Writes that wait longer than this many at once are committed in the next group.
const MAX_GROUP: usize = 512;

/// What a user did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Click,
    Purchase,
    Dismiss,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Click => "click",
            Self::Purchase => "purchase",
            Self::Dismiss => "dismiss",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "click" => Ok(Self::Click),
            "purchase" => Ok(Self::Purchase),
            "dismiss" => Ok(Self::Dismiss),
            other => Err(StoreError::Corrupt(format!("unknown event kind `{other}`"))),
        }
    }

    /// Clicks and purchases join the user's history; a dismiss excludes the item.
    pub fn is_positive(self) -> bool {
        !matches!(self, Self::Dismiss)
    }
}

/// One feedback event; `user` is the pseudonym, never the raw id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub user: String,
    pub item_id: String,
    pub kind: EventKind,
    /// Unix seconds.
    pub timestamp: i64,
    pub rec_id: Option<String>,
}

/// An event as stored, with its commit sequence number (the export's high-water mark).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: Event,
}

/// A recommendation list as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Impression {
    pub rec_id: String,
    pub user: String,
    pub items: Vec<String>,
    pub timestamp: i64,
}

/// An item added while serving: its listing as received, its p_tail and text embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub item_id: String,
    /// The listing's JSON object, as `prepare` reads a catalogue row.
    pub listing: String,
    pub p_tail: f32,
    pub label: String,
    pub embedding: Vec<f32>,
    pub timestamp: i64,
    /// Commit sequence number (set by the store).
    pub seq: i64,
}

/// One write. Writes of one group commit together.
#[derive(Debug, Clone)]
pub enum Write {
    Events(Vec<Event>),
    Impression(Impression),
    Items(Vec<NewItem>),
    /// Erase everything stored about a user and record a tombstone (the pseudonym and when):
    /// exports and the `--data` histories leave the user out from then on, and no impression
    /// of the pseudonym is written any more (one made before the erasure may commit after it).
    DeleteUser(String),
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Per event: `true` if new, `false` if its `event_id` was already stored (idempotent).
    Events(Vec<bool>),
    Done,
    /// Rows erased.
    Deleted(u64),
}

/// A user's stored data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserData {
    pub events: Vec<StoredEvent>,
    pub impressions: usize,
}

/// Where an export stopped: the last event and item sequence numbers it included (events
/// and items are numbered separately). The next export continues after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub events: i64,
    pub items: i64,
}

/// What [`Store::export`] returns: events and items after `since`.
#[derive(Debug, Clone, Default)]
pub struct ExportBatch {
    pub events: Vec<StoredEvent>,
    pub items: Vec<NewItem>,
    pub high_water_mark: Mark,
}

impl ExportBatch {
    pub(crate) fn new(events: Vec<StoredEvent>, items: Vec<NewItem>, since: Mark) -> Self {
        let high_water_mark = Mark {
            events: events.last().map_or(since.events, |e| e.seq),
            items: items.last().map_or(since.items, |i| i.seq),
        };
        Self {
            events,
            items,
            high_water_mark,
        }
    }
}

/// A store implementation: one connection, used from one thread.
pub trait Backend: Send {
    /// Applies `writes` in one transaction (all or none).
    fn apply(&mut self, writes: &[Write]) -> Result<Vec<Outcome>, StoreError>;
    fn user(&mut self, user: &str) -> Result<UserData, StoreError>;
    fn items(&mut self) -> Result<Vec<NewItem>, StoreError>;
    fn export(&mut self, since: Mark) -> Result<ExportBatch, StoreError>;
    /// The erased users (pseudonyms), oldest first.
    fn erased(&mut self) -> Result<Vec<String>, StoreError>;
    /// A write that leaves nothing behind (readiness).
    fn check_writable(&mut self) -> Result<(), StoreError>;
    /// Whether the connection is gone (a database server restarted): the thread reconnects.
    fn is_broken(&mut self) -> bool {
        false
    }
}

/// A connection that reopens itself when its server went away, and retries the operation
/// that found it gone once.
struct Connection {
    url: StoreUrl,
    backend: Box<dyn Backend>,
}

impl Connection {
    fn reconnect_if_broken(&mut self) {
        if self.backend.is_broken() {
            if let Ok(b) = self.url.connect() {
                self.backend = b;
            }
        }
    }

    fn run<T>(
        &mut self,
        mut op: impl FnMut(&mut dyn Backend) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.reconnect_if_broken();
        match op(self.backend.as_mut()) {
            Err(_) if self.backend.is_broken() => {
                self.reconnect_if_broken();
                op(self.backend.as_mut())
            }
            r => r,
        }
    }
}

/// Where the store lives: `sqlite:PATH` or a `postgres://` / `postgresql://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl StoreUrl {
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::Url(format!("`{s}`: sqlite:PATH needs a path")));
            }
            return Ok(Self::Sqlite(path.into()));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_string()));
        }
        Err(StoreError::Url(format!(
            "`{s}`: expected sqlite:PATH or postgres://USER@HOST:PORT/DB"
        )))
    }

    /// Says where without a password: `user:PASS@` and `?password=PASS` (any parameter whose
    /// name holds "password") are masked, so the result may be printed, exported or served.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite:{}", p.display()),
            Self::Postgres(url) => redact_postgres(url),
        }
    }

    /// Opens one connection (creating the schema if missing).
    pub fn connect(&self) -> Result<Box<dyn Backend>, StoreError> {
        Ok(match self {
            Self::Sqlite(path) => Box::new(sqlite::Sqlite::open(path)?),
            Self::Postgres(url) => Box::new(postgres::Postgres::connect(url)?),
        })
    }
}

fn redact_postgres(url: &str) -> String {
    // The last `@` ends the credentials even when an unencoded password holds `@`, `?` or `/`
    // (an `@` in the query masks too much, never too little).
    let (head, rest) = match (url.find("://"), url.rfind('@')) {
        (Some(a), Some(b)) if b > a => {
            let user = url[a + 3..b].split(':').next().unwrap_or("");
            let masked = if url[a + 3..b].contains(':') {
                format!("{}{user}:***@", &url[..a + 3])
            } else {
                url[..=b].to_string()
            };
            (masked, &url[b + 1..])
        }
        _ => (String::new(), url),
    };
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut out = head + base;
    if !query.is_empty() {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Read {
    User(String, Reply<UserData>),
    Items(Reply<Vec<NewItem>>),
    Export(Mark, Reply<ExportBatch>),
    Erased(Reply<Vec<String>>),
    CheckWritable(Reply<()>),
}

/// Writes and reads waiting for the store threads at most: a caller past it waits (async) for
/// a place, so a flood cannot grow the queues without bound.
const MAX_QUEUED: usize = 4096;

/// The store as the service uses it: cheap to clone, async, thread-backed.
#[derive(Clone)]
pub struct Store {
    writes: mpsc::Sender<(Write, Reply<Outcome>)>,
    reads: mpsc::Sender<Read>,
    /// Places in the two queues (held until the answer comes back).
    places: Arc<tokio::sync::Semaphore>,
    pub url: StoreUrl,
}

/// Joins the store's threads once every [`Store`] clone is dropped (queued writes are
/// committed first).
pub struct StoreThreads(Vec<JoinHandle<()>>);

impl StoreThreads {
    pub fn join(self) {
        for t in self.0 {
            let _ = t.join();
        }
    }
}

impl Store {
    /// Connects twice (writer and reader) and starts the two threads. `on_commit` is called
    /// after each group commit.
    pub fn open(
        url: &StoreUrl,
        on_commit: impl Fn() + Send + 'static,
    ) -> Result<(Self, StoreThreads), StoreError> {
        let mut writer = Connection {
            url: url.clone(),
            backend: url.connect()?,
        };
        let mut reader = Connection {
            url: url.clone(),
            backend: url.connect()?,
        };
        let (wtx, wrx) = mpsc::channel::<(Write, Reply<Outcome>)>();
        let (rtx, rrx) = mpsc::channel::<Read>();
        let w = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Ok(first) = wrx.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match wrx.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    writer.reconnect_if_broken();
                    commit_group(&mut writer, group);
                    on_commit();
                }
            })
            .map_err(|e| StoreError::Thread(e.to_string()))?;
        let r = std::thread::Builder::new()
            .name("store-reader".into())
            .spawn(move || {
                while let Ok(read) = rrx.recv() {
                    match read {
                        Read::User(u, tx) => drop(tx.send(reader.run(|b| b.user(&u)))),
                        Read::Items(tx) => drop(tx.send(reader.run(|b| b.items()))),
                        Read::Export(s, tx) => drop(tx.send(reader.run(|b| b.export(s)))),
                        Read::Erased(tx) => drop(tx.send(reader.run(|b| b.erased()))),
                        Read::CheckWritable(tx) => {
                            drop(tx.send(reader.run(|b| b.check_writable())))
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Thread(e.to_string()))?;
        Ok((
            Self {
                writes: wtx,
                reads: rtx,
                places: Arc::new(tokio::sync::Semaphore::new(MAX_QUEUED)),
                url: url.clone(),
            },
            StoreThreads(vec![w, r]),
        ))
    }

    /// Commits `write` durably; returns once the commit is done.
    pub async fn write(&self, write: Write) -> Result<Outcome, StoreError> {
        let _place = self
            .places
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let (tx, rx) = oneshot::channel();
        self.writes
            .send((write, tx))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T>(&self, make: impl FnOnce(Reply<T>) -> Read) -> Result<T, StoreError> {
        let _place = self
            .places
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let (tx, rx) = oneshot::channel();
        self.reads.send(make(tx)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn user(&self, user: &str) -> Result<UserData, StoreError> {
        let user = user.to_string();
        self.read(|tx| Read::User(user, tx)).await
    }

    pub async fn items(&self) -> Result<Vec<NewItem>, StoreError> {
        self.read(Read::Items).await
    }

    pub async fn export(&self, since: Mark) -> Result<ExportBatch, StoreError> {
        self.read(|tx| Read::Export(since, tx)).await
    }

    /// The erased users' pseudonyms.
    pub async fn erased(&self) -> Result<Vec<String>, StoreError> {
        self.read(Read::Erased).await
    }

    pub async fn check_writable(&self) -> Result<(), StoreError> {
        self.read(Read::CheckWritable).await
    }
}

/// Commits a group in one transaction; if that fails, each write alone, so one bad write
/// fails only its own caller. A transaction that failed because the server went away is
/// retried once on a new connection (events are idempotent on their id).
fn commit_group(conn: &mut Connection, group: Vec<(Write, Reply<Outcome>)>) {
    let writes: Vec<Write> = group.iter().map(|(w, _)| w.clone()).collect();
    match conn.run(|b| b.apply(&writes)) {
        Ok(outcomes) => {
            for ((_, tx), outcome) in group.into_iter().zip(outcomes) {
                let _ = tx.send(Ok(outcome));
            }
        }
        Err(_) if group.len() > 1 => {
            for (w, tx) in group {
                let r = conn
                    .run(|b| b.apply(std::slice::from_ref(&w)))
                    .map(|mut o| o.remove(0));
                let _ = tx.send(r);
            }
        }
        Err(e) => {
            for (_, tx) in group {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}

/// Little-endian f32 bytes (embeddings as BLOB / BYTEA).
pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn f32_from_bytes(b: &[u8]) -> Result<Vec<f32>, StoreError> {
    if !b.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt(format!(
            "an embedding of {} bytes is not a list of f32",
            b.len()
        )));
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn event(id: &str, user: &str, item: &str, kind: EventKind) -> Event {
        Event {
            event_id: id.into(),
            user: user.into(),
            item_id: item.into(),
            kind,
            timestamp: 1_700_000_000,
            rec_id: None,
        }
    }

    /// The behaviour both backends must have (run on each).
    pub fn exercise(url: &StoreUrl) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (store, threads) = Store::open(url, || {}).unwrap();
        rt.block_on(async {
            store.check_writable().await.unwrap();
            let e1 = event("e1", "u_a", "i1", EventKind::Click);
            let e2 = event("e2", "u_a", "i2", EventKind::Dismiss);
            let out = store
                .write(Write::Events(vec![e1.clone(), e2.clone()]))
                .await
                .unwrap();
            assert_eq!(out, Outcome::Events(vec![true, true]));
            // The same event id again is acknowledged, not stored twice.
            let again = store.write(Write::Events(vec![e1.clone()])).await.unwrap();
            assert_eq!(again, Outcome::Events(vec![false]));
            store
                .write(Write::Impression(Impression {
                    rec_id: "r1".into(),
                    user: "u_a".into(),
                    items: vec!["i1".into(), "i3".into()],
                    timestamp: 1,
                }))
                .await
                .unwrap();
            let item = NewItem {
                item_id: "new1".into(),
                listing: r#"{"item_id":"new1","title":"A"}"#.into(),
                p_tail: 0.75,
                label: "tail".into(),
                embedding: vec![0.5, -1.25, 3.0],
                timestamp: 2,
                seq: 0,
            };
            store.write(Write::Items(vec![item.clone()])).await.unwrap();
            let dup = store
                .write(Write::Items(vec![item.clone()]))
                .await
                .unwrap_err();
            assert!(dup.is_unique_violation(), "{dup}");
            let data = store.user("u_a").await.unwrap();
            assert_eq!(data.events.len(), 2);
            assert_eq!(data.events[0].event, e1);
            assert_eq!(data.events[1].event, e2);
            assert!(data.events[0].seq < data.events[1].seq);
            assert_eq!(data.impressions, 1);
            let items = store.items().await.unwrap();
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].embedding, item.embedding);
            assert_eq!(items[0].p_tail, 0.75);

            let all = store.export(Mark::default()).await.unwrap();
            assert_eq!((all.events.len(), all.items.len()), (2, 1));
            let rest = store.export(all.high_water_mark).await.unwrap();
            assert!(rest.events.is_empty() && rest.items.is_empty());
            assert_eq!(rest.high_water_mark, all.high_water_mark);
            let e3 = event("e3", "u_b", "i1", EventKind::Purchase);
            store.write(Write::Events(vec![e3.clone()])).await.unwrap();
            let next = store.export(all.high_water_mark).await.unwrap();
            assert_eq!(next.events.len(), 1);
            assert_eq!(next.events[0].event, e3);

            // Many concurrent writes: all acknowledged, all stored.
            let mut tasks = Vec::new();
            for i in 0..50 {
                let s = store.clone();
                tasks.push(tokio::spawn(async move {
                    let e = event(&format!("c{i}"), "u_c", "i1", EventKind::Click);
                    s.write(Write::Events(vec![e])).await
                }));
            }
            for t in tasks {
                assert_eq!(t.await.unwrap().unwrap(), Outcome::Events(vec![true]));
            }
            assert_eq!(store.user("u_c").await.unwrap().events.len(), 50);

            let deleted = store.write(Write::DeleteUser("u_a".into())).await.unwrap();
            assert_eq!(deleted, Outcome::Deleted(3));
            assert_eq!(store.user("u_a").await.unwrap(), UserData::default());
        });
        drop(store);
        threads.join();
    }

    #[test]
    fn store_urls_parse_and_redact() {
        assert_eq!(
            StoreUrl::parse("sqlite:/tmp/x.db").unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(StoreUrl::parse("sqlite:").is_err());
        assert!(StoreUrl::parse("mysql://x").is_err());
        let pg = StoreUrl::parse("postgres://bob:secret@db:5432/longtail").unwrap();
        assert_eq!(pg.redacted(), "postgres://bob:***@db:5432/longtail");
        let pg = StoreUrl::parse(
            "postgres://bob@db/lt?sslmode=require&password=s3cret&SSLPassword=k3y&user=bob",
        )
        .unwrap();
        let shown = pg.redacted();
        assert!(
            !shown.contains("s3cret") && !shown.contains("k3y"),
            "{shown}"
        );
        assert_eq!(
            shown,
            "postgres://bob@db/lt?sslmode=require&password=***&SSLPassword=***&user=bob"
        );
        // a password holding `@` or `?`: nothing of it shows
        let pg = StoreUrl::parse("postgres://bob:p@ss?w0rd@db/lt").unwrap();
        assert!(!pg.redacted().contains("w0rd"), "{}", pg.redacted());
    }

    #[test]
    fn embeddings_round_trip_through_bytes() {
        let v = vec![0.0, -1.5, f32::MIN_POSITIVE, 3.25e7];
        assert_eq!(f32_from_bytes(&f32_bytes(&v)).unwrap(), v);
        assert!(f32_from_bytes(&[1, 2, 3]).is_err());
    }
}
