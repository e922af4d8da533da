//! Text normalisation for catalogue fields.

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

/// Cleans one raw text value:
///
/// 1. decodes HTML entities, twice at most (catalogues are often
///    double-escaped: `&amp;amp;` -> `&amp;` -> `&`);
/// 2. strips HTML tags and comments (`<br>`, `<p class="x">`, `</b>`,
///    `<!-- -->`) but keeps a lone `<` as in `a < b`;
/// 3. turns tabs and line breaks into spaces and drops other control
///    characters;
/// 4. applies Unicode NFKC (full-width ASCII becomes ASCII; CJK stays);
/// 5. collapses whitespace runs to one space and trims.
pub fn clean_text(raw: &str) -> String {
    let once = html_escape::decode_html_entities(raw);
    let twice = html_escape::decode_html_entities(&once);
    let untagged = strip_tags(&twice);
    let visible: String = untagged
        .chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' | '\u{2028}' | '\u{2029}' => Some(' '),
            '\u{feff}' => None,
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    let normalised: String = visible.nfkc().collect();
    normalised.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Inline tags vanish without a trace; any other tag becomes a space so
/// `a<br>b` does not turn into `ab`.
const INLINE_TAGS: &[&str] = &[
    "a", "abbr", "b", "code", "em", "font", "i", "small", "span", "strong", "sub", "sup", "u",
];

fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    // A `<!--` after the last `-->` is text: knowing that up front keeps an unclosed comment
    // (or 10^5 of them) from rescanning the rest of the string each time, so this is linear.
    let last_close = s.rfind("-->");
    let mut rest = s;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let at = s.len() - candidate.len();
        let comment_may_close = last_close.is_some_and(|c| c >= at + 4);
        match tag_len(candidate, comment_may_close) {
            Some((len, inline)) => {
                if !inline {
                    out.push(' ');
                }
                rest = &candidate[len..];
            }
            None => {
                out.push('<');
                rest = &candidate[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// If `s` (starting with `<`) begins with a tag or comment, returns its byte
/// length and whether it is an inline tag. `comment_may_close`: a `-->` follows somewhere (else
/// a `<!--` is text, found without scanning).
fn tag_len(s: &str, comment_may_close: bool) -> Option<(usize, bool)> {
    if let Some(body) = s.strip_prefix("<!--") {
        if !comment_may_close {
            return None;
        }
        return body.find("-->").map(|end| (4 + end + 3, false));
    }
    let bytes = s.as_bytes();
    let mut i = 1;
    if bytes.get(i) == Some(&b'/') {
        i += 1;
    }
    // a tag name starts with a letter (`<!DOCTYPE` too); `< 3`, `<3` are text
    if bytes.get(i) == Some(&b'!') {
        i += 1;
    }
    let name_start = i;
    while bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric()) {
        i += 1;
    }
    if i == name_start || !bytes[name_start].is_ascii_alphabetic() {
        return None;
    }
    let name = s[name_start..i].to_ascii_lowercase();
    match bytes.get(i) {
        Some(b'>' | b'/') => {}
        Some(b) if b.is_ascii_whitespace() => {}
        _ => return None,
    }
    let close = s[i..].find(['>', '<'])?;
    if bytes[i + close] != b'>' {
        return None;
    }
    Some((i + close + 1, INLINE_TAGS.contains(&name.as_str())))
}

/// Renders a JSON value as text before cleaning: strings as-is, numbers and
/// booleans in their JSON spelling, arrays flattened and joined with `, `
/// (Amazon `categories` are nested lists), objects as `key: value` pairs
/// joined with `; `, null as empty.
pub fn render_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => join_non_empty(items.iter().map(render_value), ", "),
        Value::Object(map) => join_non_empty(
            map.iter().map(|(k, v)| {
                let v = render_value(v);
                if v.is_empty() {
                    v
                } else {
                    format!("{k}: {v}")
                }
            }),
            "; ",
        ),
    }
}

fn join_non_empty(parts: impl Iterator<Item = String>, sep: &str) -> String {
    parts
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_entities_including_double_escaped() {
        assert_eq!(clean_text("Tom &amp; Jerry"), "Tom & Jerry");
        assert_eq!(clean_text("Tom &amp;amp; Jerry"), "Tom & Jerry");
        assert_eq!(
            clean_text("5&quot; binder &#8211; blue &#x2019;"),
            "5\" binder – blue ’"
        );
        assert_eq!(clean_text("AT&T &copy;"), "AT&T ©");
        // at most two passes
        assert_eq!(clean_text("&amp;amp;amp;"), "&amp;");
    }

    #[test]
    fn strips_tags_but_not_lone_angle_brackets() {
        assert_eq!(
            clean_text("line one<br>line two<br/>three"),
            "line one line two three"
        );
        assert_eq!(
            clean_text("<p class=\"x\">Para</p><p>Next</p>"),
            "Para Next"
        );
        assert_eq!(clean_text("very <b>bold</b>ness"), "very boldness");
        assert_eq!(clean_text("a < b and c > d"), "a < b and c > d");
        assert_eq!(clean_text("x<3 y"), "x<3 y");
        assert_eq!(clean_text("1 <2"), "1 <2");
        assert_eq!(clean_text("a<b"), "a<b");
        assert_eq!(clean_text("keep<!-- hidden -->this"), "keep this");
        assert_eq!(clean_text("&lt;br /&gt;escaped tag"), "escaped tag");
        assert_eq!(clean_text("unclosed <div class=x"), "unclosed <div class=x");
        assert_eq!(clean_text("a<!-- open <b>x</b>"), "a<!-- open x");
        assert_eq!(clean_text("a<!--x--><!--"), "a <!--");
        assert_eq!(clean_text("<!--<!--x-->y"), "y");
    }

    /// Adversarial inputs of 1 MiB clean in linear time (an unclosed `<!--` used to rescan the
    /// rest of the string, so a title of them stalled `serve`'s model thread for minutes).
    #[test]
    fn adversarial_megabyte_inputs_clean_in_linear_time() {
        let mib = 1 << 20;
        let cases = [
            "<!--".repeat(mib / 4),
            "<!--".repeat(mib / 8) + "-->",
            "<a".repeat(mib / 2),
            "<".repeat(mib),
            "&amp;".repeat(mib / 5),
            "<p ".repeat(mib / 3),
            format!("<{}", "a".repeat(mib)),
        ];
        for case in &cases {
            let started = std::time::Instant::now();
            let out = clean_text(case);
            let took = started.elapsed();
            // a quadratic pass over 1 MiB takes minutes; linear takes milliseconds (a debug
            // build a few hundred)
            assert!(
                took < std::time::Duration::from_secs(2),
                "{}...: {took:?} for {} bytes -> {} bytes",
                &case[..16],
                case.len(),
                out.len()
            );
        }
    }

    #[test]
    fn removes_controls_and_collapses_whitespace() {
        assert_eq!(clean_text("  a\tb\r\n\nc \u{0007}d\u{0000}  "), "a b c d");
        assert_eq!(clean_text("\u{feff}bom"), "bom");
        assert_eq!(clean_text("nbsp\u{00a0}here"), "nbsp here");
        assert_eq!(clean_text(" \n\t "), "");
    }

    #[test]
    fn nfkc_keeps_cjk_and_folds_full_width() {
        assert_eq!(clean_text("得力 订书机 12号"), "得力 订书机 12号");
        assert_eq!(
            clean_text("ステープラー　ホッチキス"),
            "ステープラー ホッチキス"
        );
        assert_eq!(clean_text("ＡＢＣ１２３"), "ABC123");
        // half-width katakana is composed to full-width
        assert_eq!(clean_text("ｶﾞ"), "ガ");
        assert_eq!(clean_text("ﬁle"), "file");
    }

    #[test]
    fn renders_non_string_values() {
        assert_eq!(render_value(&json!(null)), "");
        assert_eq!(render_value(&json!(1995)), "1995");
        assert_eq!(render_value(&json!(2.5)), "2.5");
        assert_eq!(render_value(&json!(true)), "true");
        assert_eq!(
            render_value(&json!([["Office", "Paper"], ["Office", ""], []])),
            "Office, Paper, Office"
        );
        assert_eq!(
            render_value(&json!({"color": "red", "n": 2, "x": null})),
            "color: red; n: 2"
        );
    }
}
