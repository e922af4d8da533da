//! Inputs: anything that can hand out a field's text by name.
//!
//! The training crate reads prepared rows (`{"fields": {...}, "text": ...}`), the streaming
//! scorer may get raw catalogue rows or plain strings; all of them implement [`FieldSource`] so
//! one `encode_item` call serves every caller without copying rows into a common struct.

use std::collections::{BTreeMap, HashMap};

/// The field name a plain string is exposed under, and the fallback used when none of a
/// template's fields is present.
pub const TEXT_FIELD: &str = "text";

/// A record whose fields can be looked up by name.
///
/// A field that is absent, or whose text is empty or only whitespace, counts as missing.
pub trait FieldSource {
    /// The raw text of field `name`, if the record has it.
    fn field(&self, name: &str) -> Option<&str>;
}

impl<T: FieldSource + ?Sized> FieldSource for &T {
    fn field(&self, name: &str) -> Option<&str> {
        (**self).field(name)
    }
}

/// A plain string is a record with a single `text` field.
impl FieldSource for str {
    fn field(&self, name: &str) -> Option<&str> {
        (name == TEXT_FIELD).then_some(self)
    }
}

impl FieldSource for String {
    fn field(&self, name: &str) -> Option<&str> {
        self.as_str().field(name)
    }
}

impl<K, V, S> FieldSource for HashMap<K, V, S>
where
    K: std::borrow::Borrow<str> + std::hash::Hash + Eq,
    V: AsRef<str>,
    S: std::hash::BuildHasher,
{
    fn field(&self, name: &str) -> Option<&str> {
        self.get(name).map(AsRef::as_ref)
    }
}

impl<K, V> FieldSource for BTreeMap<K, V>
where
    K: std::borrow::Borrow<str> + Ord,
    V: AsRef<str>,
{
    fn field(&self, name: &str) -> Option<&str> {
        self.get(name).map(AsRef::as_ref)
    }
}

/// `(name, text)` pairs, e.g. `[("title", "Stapler"), ("brand", "deli")]`.
impl<K: AsRef<str>, V: AsRef<str>> FieldSource for [(K, V)] {
    fn field(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> FieldSource for [(K, V); N] {
    fn field(&self, name: &str) -> Option<&str> {
        self.as_slice().field(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FieldSource for Vec<(K, V)> {
    fn field(&self, name: &str) -> Option<&str> {
        self.as_slice().field(name)
    }
}

/// String members of a JSON object; non-string values count as missing.
impl FieldSource for serde_json::Map<String, serde_json::Value> {
    fn field(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(serde_json::Value::as_str)
    }
}

/// A JSON row. Looks in a nested `fields` object first (the prepared items.jsonl layout
/// `{"item_id", "fields": {...}, "text"}`), then at the top level (raw catalogue rows and the
/// joined `text`).
impl FieldSource for serde_json::Value {
    fn field(&self, name: &str) -> Option<&str> {
        let obj = self.as_object()?;
        obj.get("fields")
            .and_then(serde_json::Value::as_object)
            .and_then(|f| f.field(name))
            .or_else(|| obj.field(name))
    }
}

/// The field's text if it is present and not blank.
pub(crate) fn present<'a, F: FieldSource + ?Sized>(src: &'a F, name: &str) -> Option<&'a str> {
    src.field(name).filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_string_is_text_field() {
        assert_eq!("hello".field("text"), Some("hello"));
        assert_eq!("hello".field("title"), None);
        assert_eq!(String::from("x").field("text"), Some("x"));
    }

    #[test]
    fn maps_and_pairs() {
        let mut m = HashMap::new();
        m.insert("title".to_string(), "Stapler".to_string());
        assert_eq!(m.field("title"), Some("Stapler"));
        let b: BTreeMap<&str, &str> = [("brand", "deli")].into_iter().collect();
        assert_eq!(b.field("brand"), Some("deli"));
        let pairs = [("title", "A"), ("brand", "B")];
        assert_eq!(pairs.field("brand"), Some("B"));
        assert_eq!(pairs.field("nope"), None);
    }

    #[test]
    fn json_rows_prefer_nested_fields() {
        let prepared = serde_json::json!({
            "item_id": "X1",
            "fields": {"title": "Pen", "brand": ""},
            "text": "Pen",
        });
        assert_eq!(prepared.field("title"), Some("Pen"));
        assert_eq!(prepared.field("text"), Some("Pen"));
        assert_eq!(present(&prepared, "brand"), None);
        let raw = serde_json::json!({"title": "Pen", "brand": "Bic", "n": 3});
        assert_eq!(raw.field("brand"), Some("Bic"));
        assert_eq!(raw.field("n"), None);
    }

    #[test]
    fn blank_counts_as_missing() {
        let pairs = [("title", "  \t"), ("brand", "B")];
        assert_eq!(present(&pairs, "title"), None);
        assert_eq!(present(&pairs, "brand"), Some("B"));
    }
}
