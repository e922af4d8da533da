//! SQLite backend: one file, WAL journal, `synchronous=FULL` (a commit is on disk when it
//! returns, not just in the WAL's page cache).

use std::path::Path;

use rusqlite::{params, Connection, TransactionBehavior};

use super::{
    f32_bytes, f32_from_bytes, Backend, Event, EventKind, ExportBatch, Mark, NewItem, Outcome,
    StoredEvent, UserData, Write, EVENT_COLUMNS, ITEM_COLUMNS,
};
use crate::error::StoreError;

pub struct Sqlite {
    conn: Connection,
}

fn err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::{SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::UniqueViolation(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

impl Sqlite {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "{}: journal_mode is {mode}, WAL is required",
                path.display()
            )));
        }
        // secure_delete: an erased user's rows are overwritten with zeros, not left in free
        // pages.
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;",
        )
        .map_err(err)?;
        conn.execute_batch(&super::schema(
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "REAL",
            "BLOB",
        ))
        .map_err(err)?;
        Ok(Self { conn })
    }
}

/// Every row of a prepared query, decoded by `row`.
fn query_all<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let rows = stmt.query_map(params, row).map_err(err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(err)
}

/// A stored value that does not decode (an unknown event kind, a damaged embedding).
fn corrupt(column: usize, e: StoreError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    let kind: String = r.get(4)?;
    Ok(StoredEvent {
        seq: r.get(0)?,
        event: Event {
            event_id: r.get(1)?,
            user: r.get(2)?,
            item_id: r.get(3)?,
            kind: EventKind::parse(&kind).map_err(|e| corrupt(4, e))?,
            timestamp: r.get(5)?,
            rec_id: r.get(6)?,
        },
    })
}

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NewItem> {
    let p: f64 = r.get(3)?;
    let emb: Vec<u8> = r.get(5)?;
    Ok(NewItem {
        seq: r.get(0)?,
        item_id: r.get(1)?,
        listing: r.get(2)?,
        p_tail: p as f32,
        label: r.get(4)?,
        embedding: f32_from_bytes(&emb).map_err(|e| corrupt(5, e))?,
        timestamp: r.get(6)?,
    })
}

impl Backend for Sqlite {
    fn apply(&mut self, writes: &[Write]) -> Result<Vec<Outcome>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut out = Vec::with_capacity(writes.len());
        let mut erased_any = false;
        for w in writes {
            out.push(match w {
                Write::Events(events) => {
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT INTO events (event_id, user_id, item_id, kind, ts, rec_id) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (event_id) DO NOTHING",
                        )
                        .map_err(err)?;
                    let mut new = Vec::with_capacity(events.len());
                    for e in events {
                        let n = stmt
                            .execute(params![
                                e.event_id,
                                e.user,
                                e.item_id,
                                e.kind.as_str(),
                                e.timestamp,
                                e.rec_id
                            ])
                            .map_err(err)?;
                        new.push(n == 1);
                    }
                    Outcome::Events(new)
                }
                Write::Impression(i) => {
                    let items = serde_json::to_string(&i.items)
                        .map_err(|e| StoreError::Backend(e.to_string()))?;
                    // Never for an erased user: a list made before a DELETE that raced it must not
                    // leave a trace after it (impressions only correct exposure; none are needed).
                    tx.execute(
                        "INSERT INTO impressions (rec_id, user_id, items, ts) \
                         SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS \
                         (SELECT 1 FROM erased WHERE user_id = ?2) \
                         ON CONFLICT (rec_id) DO NOTHING",
                        params![i.rec_id, i.user, items, i.timestamp],
                    )
                    .map_err(err)?;
                    Outcome::Done
                }
                Write::Items(items) => {
                    for it in items {
                        tx.execute(
                            "INSERT INTO items (item_id, listing, p_tail, label, embedding, ts) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            params![
                                it.item_id,
                                it.listing,
                                f64::from(it.p_tail),
                                it.label,
                                f32_bytes(&it.embedding),
                                it.timestamp
                            ],
                        )
                        .map_err(err)?;
                    }
                    Outcome::Done
                }
                Write::DeleteUser(user) => {
                    let a = tx
                        .execute("DELETE FROM events WHERE user_id = ?1", params![user])
                        .map_err(err)?;
                    let b = tx
                        .execute("DELETE FROM impressions WHERE user_id = ?1", params![user])
                        .map_err(err)?;
                    tx.execute(
                        "INSERT INTO erased (user_id, ts) VALUES (?1, ?2) \
                         ON CONFLICT (user_id) DO UPDATE SET ts = excluded.ts",
                        params![user, crate::now()],
                    )
                    .map_err(err)?;
                    erased_any = true;
                    Outcome::Deleted((a + b) as u64)
                }
            });
        }
        tx.commit().map_err(err)?;
        if erased_any {
            // secure_delete zeroed the freed pages; the WAL still holds the old ones until
            // it is checkpointed and truncated.
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(err)?;
        }
        Ok(out)
    }

    fn user(&mut self, user: &str) -> Result<UserData, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE user_id = ?1 ORDER BY seq"
            ))
            .map_err(err)?;
        let events = stmt
            .query_map(params![user], event_row)
            .map_err(err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(err)?;
        let impressions: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM impressions WHERE user_id = ?1",
                params![user],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(UserData {
            events,
            impressions: impressions as usize,
        })
    }

    fn items(&mut self) -> Result<Vec<NewItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {ITEM_COLUMNS} FROM items ORDER BY seq"))
            .map_err(err)?;
        query_all(&mut stmt, [], item_row)
    }

    fn export(&mut self, since: Mark) -> Result<ExportBatch, StoreError> {
        // One read transaction: events and items of the same committed state.
        let tx = self.conn.transaction().map_err(err)?;
        let events: Vec<StoredEvent> = {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq"
                ))
                .map_err(err)?;
            query_all(&mut stmt, params![since.events], event_row)?
        };
        let items: Vec<NewItem> = {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {ITEM_COLUMNS} FROM items WHERE seq > ?1 ORDER BY seq"
                ))
                .map_err(err)?;
            query_all(&mut stmt, params![since.items], item_row)?
        };
        tx.commit().map_err(err)?;
        Ok(ExportBatch::new(events, items, since))
    }

    fn erased(&mut self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT user_id FROM erased ORDER BY ts, user_id")
            .map_err(err)?;
        query_all(&mut stmt, [], |r| r.get(0))
    }

    fn check_writable(&mut self) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS ready_probe (x INTEGER); INSERT INTO ready_probe VALUES (1);")
            .map_err(err)?;
        tx.rollback().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::super::StoreUrl;

    #[test]
    fn sqlite_store_behaves() {
        let dir = tempfile::tempdir().unwrap();
        super::super::tests::exercise(&StoreUrl::Sqlite(dir.path().join("s/events.db")));
    }

    #[test]
    fn sqlite_store_is_wal_with_full_sync_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let s = super::Sqlite::open(&path).unwrap();
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = s
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        drop(s);
        use super::super::{tests::event, Backend, EventKind, Write};
        let mut s = super::Sqlite::open(&path).unwrap();
        s.apply(&[Write::Events(vec![event("x", "u", "i", EventKind::Click)])])
            .unwrap();
        drop(s);
        let mut s = super::Sqlite::open(&path).unwrap();
        assert_eq!(s.user("u").unwrap().events.len(), 1);
    }
}
