//! Streams interactions: validates, counts per item, writes the cleaned log.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::path::Path;

use longtail_fs::AtomicFile;
use serde_json::Value;

use crate::clean::render_value;
use crate::options::PrepareOptions;
use crate::reader::{excerpt, RecordReader, Reject, RejectReason};
use crate::stats::FileSummary;
use crate::timestamp::parse_timestamp;
use crate::DataError;
use longtail_progress::Event;

use super::catalogue::{read_options, Catalogue};
use super::rows::{for_each_row, id_text, RejectLog};

/// Per-item aggregates (aligned with the catalogue) and log-wide totals.
pub(crate) struct Popularity {
    pub(crate) counts: Vec<u64>,
    pub(crate) first_seen: Vec<Option<i64>>,
    pub(crate) n_users: u64,
    pub(crate) n_interactions: u64,
}

pub(crate) fn read_interactions(
    opts: &PrepareOptions,
    cat: &Catalogue,
    out_csv: &Path,
    rejects: &mut RejectLog,
    progress: &dyn Fn(Event<'_>),
) -> Result<(Popularity, FileSummary), DataError> {
    let reader = RecordReader::open(&opts.interactions, read_options(opts))?;
    for col in [&opts.user_column, &opts.item_column, &opts.timestamp_column] {
        reader.require_column(col)?;
    }
    let mut has_rating = reader
        .columns()
        .map(|cols| cols.contains(&opts.rating_column));
    let mut out = csv::Writer::from_writer(AtomicFile::create(out_csv)?);
    let write_err = |e: csv::Error| DataError::Write {
        path: out_csv.to_path_buf(),
        source: e.into(),
    };
    let n = cat.items.len();
    let mut pop = Popularity {
        counts: vec![0; n],
        first_seen: vec![None; n],
        n_users: 0,
        n_interactions: 0,
    };
    // 64-bit hashes: memory per user stays small and fixed; a collision
    // among even 10^8 users is vanishingly unlikely
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let mut users: HashSet<u64> = HashSet::new();

    let summary = for_each_row(
        reader,
        "interactions",
        &opts.interactions,
        rejects,
        progress,
        |rec| {
            let field = |name: &str| rec.fields.get(name);
            let missing = |col: &str| {
                let detail = format!("`{col}` is missing or empty");
                Reject::new(rec.line, RejectReason::MissingId, detail)
            };
            let Some(user) = id_text(field(&opts.user_column)) else {
                return Ok(Err(missing(&opts.user_column)));
            };
            let Some(item) = id_text(field(&opts.item_column)) else {
                return Ok(Err(missing(&opts.item_column)));
            };
            let Some(&idx) = cat.index.get(&item) else {
                let detail = format!("item `{}` is not in the catalogue", excerpt(&item));
                return Ok(Err(Reject::new(
                    rec.line,
                    RejectReason::UnknownItem,
                    detail,
                )));
            };
            let ts = match parse_timestamp(field(&opts.timestamp_column).unwrap_or(&Value::Null)) {
                Ok(ts) => ts,
                Err(why) => {
                    return Ok(Err(Reject::new(
                        rec.line,
                        RejectReason::InvalidTimestamp,
                        why,
                    )));
                }
            };
            // JSON Lines declare no columns: the first record decides
            let rating =
                *has_rating.get_or_insert_with(|| rec.fields.contains_key(&opts.rating_column));
            if pop.n_interactions == 0 {
                let mut header = vec!["user_id", "item_id", "timestamp"];
                if rating {
                    header.push("rating");
                }
                out.write_record(&header).map_err(write_err)?;
            }
            let ts_text = ts.to_string();
            let mut row = vec![user.as_str(), item.as_str(), ts_text.as_str()];
            let rating_text = field(&opts.rating_column)
                .map(render_value)
                .unwrap_or_default();
            if rating {
                row.push(rating_text.trim());
            }
            out.write_record(&row).map_err(write_err)?;

            pop.counts[idx] += 1;
            let first = &mut pop.first_seen[idx];
            *first = Some(first.map_or(ts, |f| f.min(ts)));
            users.insert(hasher.hash_one(&user));
            pop.n_interactions += 1;
            Ok(Ok(()))
        },
    )?;
    pop.n_users = users.len() as u64;
    out.into_inner()
        .map_err(|e| DataError::Write {
            path: out_csv.to_path_buf(),
            source: e.into_error(),
        })?
        .commit()?;
    Ok((pop, summary))
}
