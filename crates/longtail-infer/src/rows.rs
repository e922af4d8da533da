//! Turning an input row into the fields the template reads.
//!
//! Two kinds of rows are accepted: `prepare`'s `items.jsonl` rows (a `fields` object of cleaned
//! texts plus the joined `text`), and raw catalogue rows (text fields at the top level, any
//! JSON type), which are rendered and cleaned exactly as `prepare` does so both give the same
//! tokens for the same product.

use std::collections::BTreeMap;

use longtail_data::{clean_text, render_value};
use longtail_tokenize::{FieldSource, TEXT_FIELD};
use serde_json::{Map, Value};

/// The template-visible text fields of one row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowFields {
    pub fields: BTreeMap<String, String>,
    /// The joined text, used when none of the template's fields is present.
    pub text: Option<String>,
}

impl RowFields {
    /// Reads the fields named in `wanted` (the template's fields) from a row.
    pub fn from_row<'a>(
        row: &Map<String, Value>,
        wanted: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        if let Some(Value::Object(prepared)) = row.get("fields") {
            // `prepare` output: already cleaned, used verbatim (as training saw it).
            let fields = prepared
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect();
            let text = row
                .get(TEXT_FIELD)
                .and_then(Value::as_str)
                .map(str::to_string);
            return Self { fields, text };
        }
        let mut fields = BTreeMap::new();
        for name in wanted {
            if let Some(v) = row.get(name) {
                fields.insert(name.to_string(), clean_text(&render_value(v)));
            }
        }
        let text = row.get(TEXT_FIELD).map(|v| clean_text(&render_value(v)));
        Self { fields, text }
    }
}

impl FieldSource for RowFields {
    fn field(&self, name: &str) -> Option<&str> {
        match self.fields.get(name) {
            Some(v) => Some(v.as_str()),
            None if name == TEXT_FIELD => self.text.as_deref(),
            None => None,
        }
    }
}

/// An item id from a JSON value: a non-empty string (trimmed) or a number.
pub fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_string())
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn raw_rows_are_rendered_and_cleaned_like_prepare() {
        let row = obj(
            json!({"item_id": "A", "title": "  Pen &amp; Ink ", "categories": [["Office", "Pens"]], "price": 3}),
        );
        let f = RowFields::from_row(&row, ["title", "categories", "brand"]);
        assert_eq!(
            f.field("title"),
            Some(clean_text("  Pen &amp; Ink ").as_str())
        );
        assert_eq!(f.field("categories"), Some("Office, Pens"));
        assert_eq!(f.field("brand"), None);
        assert_eq!(f.field("price"), None, "only template fields are read");
    }

    #[test]
    fn prepared_rows_use_their_fields_and_text_fallback() {
        let row = obj(json!({"item_id": "A", "text": "joined", "fields": {"title": "T"}}));
        let f = RowFields::from_row(&row, ["title"]);
        assert_eq!(f.field("title"), Some("T"));
        assert_eq!(f.field("text"), Some("joined"));
    }

    #[test]
    fn ids_are_strings_or_numbers() {
        assert_eq!(id_text(Some(&json!(" x "))), Some("x".into()));
        assert_eq!(id_text(Some(&json!(7))), Some("7".into()));
        assert_eq!(id_text(Some(&json!(""))), None);
        assert_eq!(id_text(Some(&json!(null))), None);
        assert_eq!(id_text(None), None);
    }
}
