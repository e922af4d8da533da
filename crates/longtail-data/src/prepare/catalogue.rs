//! Reads the item catalogue: ids, cleaned text fields, duplicates.

use std::collections::{BTreeMap, HashMap};

use crate::clean::{clean_text, render_value};
use crate::options::PrepareOptions;
use crate::reader::{excerpt, ReadOptions, RecordReader, Reject, RejectReason};
use crate::stats::FileSummary;
use crate::DataError;
use longtail_progress::Event;

use super::rows::{for_each_row, id_text, RejectLog};

/// One kept catalogue item.
pub(crate) struct CatalogueItem {
    pub(crate) id: String,
    pub(crate) line: u64,
    pub(crate) text: String,
    pub(crate) fields: BTreeMap<String, String>,
}

/// Kept items in input order plus an id index.
pub(crate) struct Catalogue {
    pub(crate) items: Vec<CatalogueItem>,
    pub(crate) index: HashMap<String, usize>,
    pub(crate) empty_text: u64,
}

pub(crate) fn read_catalogue(
    opts: &PrepareOptions,
    rejects: &mut RejectLog,
    progress: &dyn Fn(Event<'_>),
) -> Result<(Catalogue, FileSummary), DataError> {
    let reader = RecordReader::open(&opts.items, read_options(opts))?;
    reader.require_column(&opts.item_id_field)?;
    let mut cat = Catalogue {
        items: Vec::new(),
        index: HashMap::new(),
        empty_text: 0,
    };
    let summary = for_each_row(reader, "items", &opts.items, rejects, progress, |rec| {
        let Some(id) = id_text(rec.fields.get(&opts.item_id_field)) else {
            let detail = format!("`{}` is missing or empty", opts.item_id_field);
            return Ok(Err(Reject::new(rec.line, RejectReason::MissingId, detail)));
        };
        if let Some(&first) = cat.index.get(&id) {
            let detail = format!(
                "item `{}` already appeared on line {}",
                excerpt(&id),
                cat.items[first].line
            );
            return Ok(Err(Reject::new(
                rec.line,
                RejectReason::DuplicateId,
                detail,
            )));
        }
        let (fields, text) = listing_text(&opts.text_fields, |f| rec.fields.get(f));
        if text.is_empty() {
            cat.empty_text += 1;
        }
        cat.index.insert(id.clone(), cat.items.len());
        cat.items.push(CatalogueItem {
            id,
            line: rec.line,
            text,
            fields,
        });
        Ok(Ok(()))
    })?;
    Ok((cat, summary))
}

pub(crate) fn read_options(opts: &PrepareOptions) -> ReadOptions {
    ReadOptions {
        max_line_bytes: opts.max_line_bytes,
    }
}

/// A raw listing's text fields (each rendered and cleaned; empty when absent) and their
/// joined text: what `prepare` stores for an item, and what `serve` computes for a new one.
pub fn listing_text<'a>(
    text_fields: &[String],
    get: impl Fn(&str) -> Option<&'a serde_json::Value>,
) -> (BTreeMap<String, String>, String) {
    let fields: BTreeMap<String, String> = text_fields
        .iter()
        .map(|f| {
            let raw = get(f).map(render_value).unwrap_or_default();
            (f.clone(), clean_text(&raw))
        })
        .collect();
    let text = join_text(text_fields, &fields);
    (fields, text)
}

/// Non-empty cleaned fields in option order, joined with ` | `.
fn join_text(order: &[String], fields: &BTreeMap<String, String>) -> String {
    order
        .iter()
        .filter_map(|f| fields.get(f).filter(|v| !v.is_empty()))
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_text_follows_option_order_and_skips_empty() {
        let order: Vec<String> = ["title", "brand", "description"].map(String::from).to_vec();
        let fields: BTreeMap<String, String> =
            [("description", "Desc"), ("brand", ""), ("title", "T")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into_iter()
                .collect();
        assert_eq!(join_text(&order, &fields), "T | Desc");
        let empty: BTreeMap<String, String> = BTreeMap::new();
        assert_eq!(join_text(&order, &empty), "");
    }
}
