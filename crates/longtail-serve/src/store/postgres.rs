//! PostgreSQL backend: the same schema, for several server replicas sharing one store.
//! Commits are durable when PostgreSQL's `synchronous_commit` is on (its default).

use postgres::{Client, NoTls, Row};

use super::{
    f32_bytes, f32_from_bytes, Backend, Event, EventKind, ExportBatch, Mark, NewItem, Outcome,
    StoredEvent, UserData, Write, EVENT_COLUMNS, ITEM_COLUMNS,
};
use crate::error::StoreError;

pub struct Postgres {
    client: Client,
}

/// The server's own message (the client's `Display` says only "db error").
fn err(e: postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            let message = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if *db.code() == postgres::error::SqlState::UNIQUE_VIOLATION {
                StoreError::UniqueViolation(message)
            } else {
                StoreError::Backend(message)
            }
        }
        None => StoreError::Backend(e.to_string()),
    }
}

impl Postgres {
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let mut client = Client::connect(url, NoTls).map_err(|e| {
            StoreError::Backend(format!(
                "connecting to {}: {e}",
                super::StoreUrl::Postgres(url.to_string()).redacted()
            ))
        })?;
        // Replicas may start together: the schema is created under a lock.
        let mut tx = client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock(7355608)", &[])
            .map_err(err)?;
        tx.batch_execute(&super::schema(
            "BIGSERIAL PRIMARY KEY",
            "DOUBLE PRECISION",
            "BYTEA",
        ))
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self { client })
    }
}

fn to_event(r: &Row) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        seq: r.get(0),
        event: Event {
            event_id: r.get(1),
            user: r.get(2),
            item_id: r.get(3),
            kind: EventKind::parse(r.get(4))?,
            timestamp: r.get(5),
            rec_id: r.get(6),
        },
    })
}

fn to_item(r: &Row) -> Result<NewItem, StoreError> {
    let p: f64 = r.get(3);
    let emb: Vec<u8> = r.get(5);
    Ok(NewItem {
        seq: r.get(0),
        item_id: r.get(1),
        listing: r.get(2),
        p_tail: p as f32,
        label: r.get(4),
        embedding: f32_from_bytes(&emb)?,
        timestamp: r.get(6),
    })
}

impl Backend for Postgres {
    fn apply(&mut self, writes: &[Write]) -> Result<Vec<Outcome>, StoreError> {
        let mut tx = self.client.transaction().map_err(err)?;
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            out.push(match w {
                Write::Events(events) => {
                    let stmt = tx
                        .prepare(
                            "INSERT INTO events (event_id, user_id, item_id, kind, ts, rec_id) \
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
                        )
                        .map_err(err)?;
                    let mut new = Vec::with_capacity(events.len());
                    for e in events {
                        let n = tx
                            .execute(
                                &stmt,
                                &[
                                    &e.event_id,
                                    &e.user,
                                    &e.item_id,
                                    &e.kind.as_str(),
                                    &e.timestamp,
                                    &e.rec_id,
                                ],
                            )
                            .map_err(err)?;
                        new.push(n == 1);
                    }
                    Outcome::Events(new)
                }
                Write::Impression(i) => {
                    let items = serde_json::to_string(&i.items)
                        .map_err(|e| StoreError::Backend(e.to_string()))?;
                    tx.execute(
                        "INSERT INTO impressions (rec_id, user_id, items, ts) \
                         SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
                         (SELECT 1 FROM erased WHERE user_id = $2) \
                         ON CONFLICT (rec_id) DO NOTHING",
                        &[&i.rec_id, &i.user, &items, &i.timestamp],
                    )
                    .map_err(err)?;
                    Outcome::Done
                }
                Write::Items(items) => {
                    for it in items {
                        tx.execute(
                            "INSERT INTO items (item_id, listing, p_tail, label, embedding, ts) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                            &[
                                &it.item_id,
                                &it.listing,
                                &f64::from(it.p_tail),
                                &it.label,
                                &f32_bytes(&it.embedding),
                                &it.timestamp,
                            ],
                        )
                        .map_err(err)?;
                    }
                    Outcome::Done
                }
                Write::DeleteUser(user) => {
                    let a = tx
                        .execute("DELETE FROM events WHERE user_id = $1", &[user])
                        .map_err(err)?;
                    let b = tx
                        .execute("DELETE FROM impressions WHERE user_id = $1", &[user])
                        .map_err(err)?;
                    tx.execute(
                        "INSERT INTO erased (user_id, ts) VALUES ($1, $2) \
                         ON CONFLICT (user_id) DO UPDATE SET ts = excluded.ts",
                        &[user, &crate::now()],
                    )
                    .map_err(err)?;
                    Outcome::Deleted(a + b)
                }
            });
        }
        tx.commit().map_err(err)?;
        Ok(out)
    }

    fn user(&mut self, user: &str) -> Result<UserData, StoreError> {
        let rows = self
            .client
            .query(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE user_id = $1 ORDER BY seq"),
                &[&user],
            )
            .map_err(err)?;
        let events = rows.iter().map(to_event).collect::<Result<_, _>>()?;
        let n: i64 = self
            .client
            .query_one(
                "SELECT COUNT(*) FROM impressions WHERE user_id = $1",
                &[&user],
            )
            .map_err(err)?
            .get(0);
        Ok(UserData {
            events,
            impressions: n as usize,
        })
    }

    fn items(&mut self) -> Result<Vec<NewItem>, StoreError> {
        let rows = self
            .client
            .query(
                &format!("SELECT {ITEM_COLUMNS} FROM items ORDER BY seq"),
                &[],
            )
            .map_err(err)?;
        rows.iter().map(to_item).collect()
    }

    fn erased(&mut self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client
            .query("SELECT user_id FROM erased ORDER BY ts, user_id", &[])
            .map_err(err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn export(&mut self, since: Mark) -> Result<ExportBatch, StoreError> {
        // A sequence value is taken before its row commits, so another replica could commit
        // seq 9 after this export saw seq 10, and the next export would skip it. SHARE mode
        // waits for in-flight inserts to commit and holds new ones until the export is read.
        let mut tx = self.client.transaction().map_err(err)?;
        tx.batch_execute("LOCK TABLE events, items IN SHARE MODE")
            .map_err(err)?;
        let events = tx
            .query(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq"),
                &[&since.events],
            )
            .map_err(err)?
            .iter()
            .map(to_event)
            .collect::<Result<Vec<_>, _>>()?;
        let items = tx
            .query(
                &format!("SELECT {ITEM_COLUMNS} FROM items WHERE seq > $1 ORDER BY seq"),
                &[&since.items],
            )
            .map_err(err)?
            .iter()
            .map(to_item)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().map_err(err)?;
        Ok(ExportBatch::new(events, items, since))
    }

    fn is_broken(&mut self) -> bool {
        self.client.is_closed()
    }

    fn check_writable(&mut self) -> Result<(), StoreError> {
        let mut tx = self.client.transaction().map_err(err)?;
        tx.batch_execute(
            "CREATE TEMP TABLE IF NOT EXISTS ready_probe (x INTEGER); INSERT INTO ready_probe VALUES (1);",
        )
        .map_err(err)?;
        tx.rollback().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_store_behaves() {
        let server = match longtail_testutil::postgres::TestServer::start() {
            Ok(s) => s,
            Err(e) => return longtail_testutil::skip!("PostgreSQL not available: {e}"),
        };
        let url = super::super::StoreUrl::parse(&server.url).unwrap();
        super::super::tests::exercise(&url);
        // The server restarts under a running store: the next write and read reconnect.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (store, threads) = super::super::Store::open(&url, || {}).unwrap();
        server.restart().unwrap();
        rt.block_on(async {
            let e =
                super::super::tests::event("after", "u_r", "i1", super::super::EventKind::Click);
            let out = store
                .write(super::super::Write::Events(vec![e]))
                .await
                .unwrap();
            assert_eq!(out, super::super::Outcome::Events(vec![true]));
            assert_eq!(store.user("u_r").await.unwrap().events.len(), 1);
        });
        drop(store);
        threads.join();
        // A second connection sees the schema and data of the first (replicas share it).
        let mut other = url.connect().unwrap();
        assert_eq!(other.user("u_c").unwrap().events.len(), 50);
    }
}
