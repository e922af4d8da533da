//! `longtail events export`: the store's clicks, purchases and new items as the files
//! `prepare` reads (`items.jsonl`, `interactions.csv`), with a high-water mark so the next
//! export continues where this one stopped. With a base data dir (the original data, or the
//! previous export's output) the files are that data plus what is new, ready for `prepare`.

use std::path::{Path, PathBuf};

use std::collections::HashSet;

use longtail_interest::Pseudonymiser;
use serde::{Deserialize, Serialize};

use crate::error::{ServeError, StoreError};
use crate::store::{EventKind, Mark, StoreUrl};

/// The file beside the exported data that says what it holds and where the next export
/// starts.
pub const EXPORT_FILE: &str = "export.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportSummary {
    /// Continue after this (pass the file to the next export's `--since`).
    pub high_water_mark: Mark,
    pub since: Mark,
    pub store: String,
    pub base: Option<PathBuf>,
    pub clicks: usize,
    pub purchases: usize,
    /// Dismissals are not interactions: counted, not written.
    pub dismissals: usize,
    pub new_items: usize,
    pub base_items: usize,
    pub base_interactions: usize,
    /// Base interactions left out: their user was erased (`DELETE /v1/users`).
    #[serde(default)]
    pub erased_interactions: usize,
}

/// Reads the mark of a previous export's `export.json` (or of a directory holding one).
pub fn read_mark(path: &Path) -> Result<Mark, ServeError> {
    let file = if path.is_dir() {
        path.join(EXPORT_FILE)
    } else {
        path.to_path_buf()
    };
    let s: ExportSummary = longtail_fs::read_json(&file).map_err(|e| ServeError::startup("", e))?;
    Ok(s.high_water_mark)
}

fn read_lines(path: &Path) -> Result<String, ServeError> {
    std::fs::read_to_string(path)
        .map_err(|e| ServeError::startup(format!("reading {}", path.display()), e))
}

/// Exports what the store holds after `since` into `out`, on top of `base`. With `pseudo`
/// (the service's key) the base's raw user ids are written as their pseudonyms, so an export
/// holds no raw id; either way the rows of erased users are left out. Without a key, a base
/// with raw ids cannot be matched against the erased pseudonyms, so that is refused while any
/// user is erased.
pub fn export(
    url: &StoreUrl,
    since: Mark,
    out: &Path,
    base: Option<&Path>,
    pseudo: Option<&Pseudonymiser>,
) -> Result<ExportSummary, ServeError> {
    // Two exports into one --out would mix their files and marks.
    let _lock = longtail_fs::OutputLock::acquire(out).map_err(|e| ServeError::startup("", e))?;
    let mut backend = url.connect()?;
    let batch = backend.export(since)?;
    let erased: HashSet<String> = backend.erased()?.into_iter().collect();
    let mut items = String::new();
    let mut interactions = String::from("user_id,item_id,timestamp\n");
    let (mut base_items, mut base_interactions, mut erased_interactions) = (0, 0, 0);
    if let Some(base) = base {
        for line in read_lines(&base.join(longtail_data::ITEMS_FILE))?.lines() {
            if !line.trim().is_empty() {
                items.push_str(line);
                items.push('\n');
                base_items += 1;
            }
        }
        let path = base.join(longtail_data::INTERACTIONS_FILE);
        let text = read_lines(&path)?;
        let header = text.lines().next().unwrap_or("");
        if header.trim() != "user_id,item_id,timestamp" {
            return Err(ServeError::Startup(format!(
                "{}:1: expected the header `user_id,item_id,timestamp`, found `{header}`",
                path.display()
            )));
        }
        // The header was checked above; the csv reader skips it and blank lines, and quotes.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut rows = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        for record in reader.records() {
            let record = record.map_err(|e| ServeError::startup(path.display().to_string(), e))?;
            let line = record.position().map_or(0, |p| p.line());
            let Some(raw) = record.get(0) else { continue };
            let user = match pseudo {
                Some(p) if p.is_keyed() && !Pseudonymiser::looks_pseudonymous(raw) => p.apply(raw),
                Some(_) => raw.to_string(),
                None if erased.is_empty() || Pseudonymiser::looks_pseudonymous(raw) => {
                    raw.to_string()
                }
                None => {
                    return Err(ServeError::Startup(format!(
                        "{}:{}: user `{raw}` is a raw id and {} user(s) are erased: give the \
                         service's user-id key (--user-id-key-file) so erased users' rows can \
                         be left out",
                        path.display(),
                        line,
                        erased.len()
                    )))
                }
            };
            if erased.contains(&user) {
                erased_interactions += 1;
                continue;
            }
            let mut fields = vec![user.as_str()];
            fields.extend(record.iter().skip(1));
            rows.write_record(&fields)
                .map_err(|err| StoreError::Backend(err.to_string()))?;
            base_interactions += 1;
        }
        let rows = rows
            .into_inner()
            .map_err(|err| StoreError::Backend(err.to_string()))?;
        interactions.push_str(&String::from_utf8_lossy(&rows));
    }
    for item in &batch.items {
        items.push_str(&item.listing);
        items.push('\n');
    }
    let (mut clicks, mut purchases, mut dismissals) = (0, 0, 0);
    // One CSV writer for every exported row (it quotes ids that need it).
    let mut rows = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for e in &batch.events {
        match e.event.kind {
            EventKind::Click => clicks += 1,
            EventKind::Purchase => purchases += 1,
            EventKind::Dismiss => {
                dismissals += 1;
                continue;
            }
        }
        let ts = e.event.timestamp.to_string();
        rows.write_record([e.event.user.as_str(), e.event.item_id.as_str(), ts.as_str()])
            .map_err(|err| StoreError::Backend(err.to_string()))?;
    }
    let rows = rows
        .into_inner()
        .map_err(|err| StoreError::Backend(err.to_string()))?;
    interactions.push_str(&String::from_utf8_lossy(&rows));
    std::fs::create_dir_all(out)
        .map_err(|e| ServeError::startup(format!("creating {}", out.display()), e))?;
    let fs_err = |e: longtail_fs::FsError| ServeError::startup("", e);
    longtail_fs::write_atomic(&out.join(longtail_data::ITEMS_FILE), items.as_bytes())
        .map_err(fs_err)?;
    longtail_fs::write_atomic(
        &out.join(longtail_data::INTERACTIONS_FILE),
        interactions.as_bytes(),
    )
    .map_err(fs_err)?;
    let summary = ExportSummary {
        high_water_mark: batch.high_water_mark,
        since,
        store: url.redacted(),
        base: base.map(Path::to_path_buf),
        clicks,
        purchases,
        dismissals,
        new_items: batch.items.len(),
        base_items,
        base_interactions,
        erased_interactions,
    };
    // Written last: its presence says the data files beside it are complete.
    longtail_fs::write_json_atomic(&out.join(EXPORT_FILE), &summary).map_err(fs_err)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::event;
    use crate::store::{NewItem, Write};

    #[test]
    fn export_writes_prepare_files_and_continues_after_its_mark() {
        let dir = tempfile::tempdir().unwrap();
        let url = StoreUrl::Sqlite(dir.path().join("events.db"));
        let mut b = url.connect().unwrap();
        b.apply(&[
            Write::Events(vec![
                event("a", "u_1", "i1", EventKind::Click),
                event("b", "u_1", "i2", EventKind::Dismiss),
                event("c", "u_2", "n1", EventKind::Purchase),
            ]),
            Write::Items(vec![NewItem {
                item_id: "n1".into(),
                listing: r#"{"item_id":"n1","title":"New, \"quoted\""}"#.into(),
                p_tail: 0.9,
                label: "tail".into(),
                embedding: vec![1.0],
                timestamp: 5,
                seq: 0,
            }]),
        ])
        .unwrap();
        let base = dir.path().join("base");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(
            base.join("items.jsonl"),
            "{\"item_id\":\"i1\"}\n{\"item_id\":\"i2\"}\n",
        )
        .unwrap();
        std::fs::write(
            base.join("interactions.csv"),
            "user_id,item_id,timestamp\nU1,i1,10\n",
        )
        .unwrap();
        let out = dir.path().join("out1");
        let s = export(&url, Mark::default(), &out, Some(&base), None).unwrap();
        assert_eq!(
            (s.clicks, s.purchases, s.dismissals, s.new_items),
            (1, 1, 1, 1)
        );
        assert_eq!((s.base_items, s.base_interactions), (2, 1));
        let inter = std::fs::read_to_string(out.join("interactions.csv")).unwrap();
        assert_eq!(
            inter,
            "user_id,item_id,timestamp\nU1,i1,10\nu_1,i1,1700000000\nu_2,n1,1700000000\n"
        );
        let items = std::fs::read_to_string(out.join("items.jsonl")).unwrap();
        assert_eq!(items.lines().count(), 3);
        assert!(items.lines().last().unwrap().contains("\"n1\""));
        assert_eq!(read_mark(&out).unwrap(), s.high_water_mark);

        // Nothing new: the next export adds nothing to its base (the first export).
        let out2 = dir.path().join("out2");
        let s2 = export(&url, read_mark(&out).unwrap(), &out2, Some(&out), None).unwrap();
        assert_eq!((s2.clicks, s2.purchases, s2.new_items), (0, 0, 0));
        assert_eq!(
            std::fs::read_to_string(out2.join("interactions.csv")).unwrap(),
            inter
        );
        // A later event is exported once.
        b.apply(&[Write::Events(vec![event(
            "d",
            "u_1",
            "n1",
            EventKind::Click,
        )])])
        .unwrap();
        let out3 = dir.path().join("out3");
        let s3 = export(&url, s2.high_water_mark, &out3, Some(&out2), None).unwrap();
        assert_eq!(s3.clicks, 1);
        let inter3 = std::fs::read_to_string(out3.join("interactions.csv")).unwrap();
        assert_eq!(inter3.lines().count(), 5);
        assert!(inter3.ends_with("u_1,n1,1700000000\n"));
    }

    /// Erasure lasts: an erased user's rows leave the next export (base rows included, under
    /// raw id or pseudonym), and an impression taken before the erasure is not written after.
    #[test]
    fn an_erased_user_leaves_every_later_export() {
        let dir = tempfile::tempdir().unwrap();
        let url = StoreUrl::Sqlite(dir.path().join("events.db"));
        let pseudo = Pseudonymiser::keyed(b"0123456789abcdef0123").unwrap();
        let (gone, kept) = (pseudo.apply("U1"), pseudo.apply("U2"));
        let mut b = url.connect().unwrap();
        b.apply(&[Write::Events(vec![
            event("a", &gone, "i1", EventKind::Click),
            event("b", &kept, "i1", EventKind::Click),
        ])])
        .unwrap();
        let base = dir.path().join("base");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("items.jsonl"), "{\"item_id\":\"i1\"}\n").unwrap();
        std::fs::write(
            base.join("interactions.csv"),
            "user_id,item_id,timestamp\nU1,i1,10\nU2,i1,11\n\"U1\",i1,12\n",
        )
        .unwrap();
        let first = dir.path().join("first");
        export(&url, Mark::default(), &first, Some(&base), Some(&pseudo)).unwrap();
        let text = std::fs::read_to_string(first.join("interactions.csv")).unwrap();
        assert!(
            !text.contains("U1") && text.contains(&gone),
            "raw ids pseudonymised: {text}"
        );

        let deleted = b.apply(&[Write::DeleteUser(gone.clone())]).unwrap();
        assert_eq!(deleted, [crate::store::Outcome::Deleted(1)]);
        // the impression of a list made before the erasure, committed after it
        b.apply(&[Write::Impression(crate::store::Impression {
            rec_id: "r1".into(),
            user: gone.clone(),
            items: vec!["i1".into()],
            timestamp: crate::now() - 1,
        })])
        .unwrap();
        assert_eq!(b.user(&gone).unwrap().impressions, 0);
        assert_eq!(b.erased().unwrap(), std::slice::from_ref(&gone));
        for (name, from) in [("again", &base), ("chained", &first)] {
            let out = dir.path().join(name);
            let s = export(&url, Mark::default(), &out, Some(from), Some(&pseudo)).unwrap();
            let text = std::fs::read_to_string(out.join("interactions.csv")).unwrap();
            assert!(
                !text.contains(&gone) && !text.contains("U1"),
                "{name}: {text}"
            );
            assert!(text.contains(&kept), "{name}: {text}");
            assert!(s.erased_interactions >= 2, "{name}: {s:?}");
        }
        // without the key, raw base ids cannot be checked against the tombstones
        let err = export(
            &url,
            Mark::default(),
            &dir.path().join("nokey"),
            Some(&base),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--user-id-key-file"), "{err}");
    }
}
