//! Property tests of the field template: any text either parses or is a `Template` error (never
//! a panic), a parsed template prints back to an equal one, and rendering any row keeps every
//! present field, in template order, between the prefix and the suffix.

use std::collections::BTreeMap;

use longtail_tokenize::{FieldTemplate, TokenizeError};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Template-ish text: braces, field-name characters and separators, so that both valid and
/// invalid templates come up often.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => Just("{".to_string()),
        3 => Just("}".to_string()),
        2 => Just("{{".to_string()),
        2 => Just("}}".to_string()),
        2 => Just(" | ".to_string()),
        4 => proptest::sample::select(vec!["title", "brand", "description", "a.b", "x-y", "得"])
            .prop_map(str::to_string),
        1 => any::<String>(),
    ];
    proptest::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

/// A literal with braces escaped, as a template writes it.
fn escape(s: &str) -> String {
    s.replace('{', "{{").replace('}', "}}")
}

/// `(prefix, [(separator, field)], suffix)` with distinct field names.
fn template_parts() -> impl Strategy<Value = (String, Vec<(String, String)>, String)> {
    let name = proptest::sample::select(vec![
        "title",
        "brand",
        "categories",
        "description",
        "text",
        "color",
    ]);
    (
        any::<String>(),
        proptest::collection::vec((any::<String>(), name), 1..6),
        any::<String>(),
    )
        .prop_map(|(prefix, mut fields, suffix)| {
            let mut seen = std::collections::HashSet::new();
            fields.retain(|(_, n)| seen.insert(*n));
            let fields = fields
                .into_iter()
                .map(|(sep, n)| (sep, n.to_string()))
                .collect();
            (prefix, fields, suffix)
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_text_parses_or_is_a_template_error(src in template_text()) {
        match FieldTemplate::parse(&src) {
            Ok(t) => {
                let printed = t.to_string();
                let again = FieldTemplate::parse(&printed).unwrap();
                prop_assert_eq!(&again, &t, "{} printed as {}", src, printed);
            }
            Err(e) => prop_assert!(matches!(e, TokenizeError::Template { .. }), "{e}"),
        }
    }

    #[test]
    fn rendering_any_row_keeps_present_fields_in_order(
        (prefix, fields, suffix) in template_parts(),
        values in proptest::collection::btree_map(
            proptest::sample::select(vec!["title", "brand", "categories", "description", "text", "color", "other"])
                .prop_map(str::to_string),
            prop_oneof![Just(String::new()), Just("  ".to_string()), any::<String>()],
            0..7,
        ),
    ) {
        let mut src = escape(&prefix);
        for (i, (sep, name)) in fields.iter().enumerate() {
            if i > 0 {
                src.push_str(&escape(sep));
            }
            src.push_str(&format!("{{{name}}}"));
        }
        src.push_str(&escape(&suffix));
        let t = FieldTemplate::parse(&src).unwrap();
        let names: Vec<&str> = t.field_names().collect();
        prop_assert_eq!(names, fields.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>());
        let mut order: Vec<&str> = t.cut_order().collect();
        order.sort_unstable();
        let mut sorted: Vec<&str> = t.field_names().collect();
        sorted.sort_unstable();
        prop_assert_eq!(order, sorted, "the cut order is a permutation of the fields");

        let item: BTreeMap<String, String> = values;
        let present: Vec<&str> = fields
            .iter()
            .filter_map(|(_, n)| item.get(n).map(String::as_str))
            .filter(|v| !v.trim().is_empty())
            .collect();
        match t.render_text(&item) {
            None => {
                prop_assert!(present.is_empty());
                prop_assert!(item.get("text").is_none_or(|v| v.trim().is_empty()));
            }
            Some(text) if present.is_empty() => {
                // no template field present: the row's plain `text` is used as it is
                prop_assert_eq!(Some(&text), item.get("text"));
            }
            Some(text) => {
                prop_assert!(text.starts_with(&prefix) && text.ends_with(&suffix), "{text:?}");
                let mut rest = &text[prefix.len()..];
                for v in present {
                    let at = rest.find(v);
                    prop_assert!(at.is_some(), "{v:?} missing from {text:?}");
                    rest = &rest[at.unwrap() + v.len()..];
                }
            }
        }
    }
}
