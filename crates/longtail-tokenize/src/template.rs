//! Stage 1: render an item's text from named fields.
//!
//! A template is `prefix {field} sep {field} sep ... {field} suffix`, e.g.
//! `"{title} | {brand} | {categories} | {description}"`. Missing or blank fields are dropped
//! together with the separator written *before* them in the template (the first present field
//! never gets a leading separator), so a row without a brand renders as
//! `"title | categories | description"`. `{{` and `}}` write literal braces.
//!
//! Each field also has a truncation rank: the cut order lists fields from the first to be cut
//! to the last. By default it is the reverse of template order with `description` moved to the
//! front and `title` to the back, i.e. `description, categories, brand, title` for the
//! catalogue template.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::error::{Result, TokenizeError};
use crate::fields::{present, FieldSource, TEXT_FIELD};

/// The catalogue template used when none is given.
pub const CATALOGUE_TEMPLATE: &str = "{title} | {brand} | {categories} | {description}";

#[derive(Debug, Clone, PartialEq, Eq)]
struct TemplateField {
    name: String,
    /// Literal text between the previous placeholder and this one (empty for the first field;
    /// text before the first placeholder is the template prefix).
    sep_before: String,
}

/// A parsed field template with its truncation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTemplate {
    prefix: String,
    fields: Vec<TemplateField>,
    suffix: String,
    /// Indices into `fields`, first to be cut first.
    cut_order: Vec<usize>,
    /// `rank[i]` = position of field `i` in `cut_order` (0 = cut first).
    rank: Vec<usize>,
}

/// What a span of rendered text is, for mapping tokens back to fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Template prefix/suffix: always kept.
    Fixed,
    /// The `j`-th *present* field (text order).
    Field(usize),
    /// The separator owned by the `j`-th present field (the text just before it).
    Sep(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub range: Range<usize>,
    pub role: Role,
}

/// Text rendered from one item, with the byte spans of its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    pub text: String,
    /// Contiguous, in text order, empty spans omitted.
    pub spans: Vec<Span>,
    /// Truncation rank of each present field (0 = cut first).
    pub field_rank: Vec<usize>,
    /// True when keeping a token prefix is the same as cutting by rank: no suffix and
    /// later fields are always cut before earlier ones. Enables the early-exit encode.
    pub prefix_truncation: bool,
}

impl FieldTemplate {
    /// Parses a template such as `"{title} | {brand} | {description}"`.
    pub fn parse(template: &str) -> Result<Self> {
        let err = |reason: &str| TokenizeError::Template {
            template: template.to_string(),
            reason: reason.to_string(),
        };
        let mut literals = vec![String::new()];
        let mut names: Vec<String> = Vec::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literals.last_mut().unwrap().push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literals.last_mut().unwrap().push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') => {
                                name.push(c)
                            }
                            Some(c) => {
                                return Err(err(&format!("invalid character {c:?} in field name")))
                            }
                            None => return Err(err("unclosed '{'")),
                        }
                    }
                    if name.is_empty() {
                        return Err(err("empty field name '{}'"));
                    }
                    if names.contains(&name) {
                        return Err(err(&format!("field {name:?} appears twice")));
                    }
                    names.push(name);
                    literals.push(String::new());
                }
                '}' => return Err(err("unmatched '}' (write '}}' for a literal brace)")),
                c => literals.last_mut().unwrap().push(c),
            }
        }
        if names.is_empty() {
            return Err(err("no {field} placeholder"));
        }
        let suffix = literals.pop().unwrap();
        let mut literals = literals.into_iter();
        let prefix = literals.next().unwrap();
        let fields = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| TemplateField {
                name,
                // literals[i] (after the prefix) sits between field i-1 and field i.
                sep_before: if i == 0 {
                    String::new()
                } else {
                    literals.next().unwrap()
                },
            })
            .collect();
        Ok(Self::with_default_order(prefix, fields, suffix))
    }

    /// Fields joined by one separator, e.g. `joined(&["title", "brand"], " | ")`.
    pub fn joined<S: AsRef<str>>(fields: &[S], separator: &str) -> Result<Self> {
        let mut src = String::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                src.push_str(&escape(separator));
            }
            src.push('{');
            src.push_str(f.as_ref());
            src.push('}');
        }
        Self::parse(&src)
    }

    /// The `{text}` template: one plain, already joined text per item.
    pub fn plain_text() -> Self {
        Self::parse("{text}").expect("static template")
    }

    /// `{title} | {brand} | {categories} | {description}`, description cut first.
    pub fn catalogue() -> Self {
        Self::parse(CATALOGUE_TEMPLATE).expect("static template")
    }

    /// Sets the truncation order, first-cut field first. Must name every field once.
    pub fn with_cut_order<S: AsRef<str>>(mut self, first_cut_first: &[S]) -> Result<Self> {
        let mut order = Vec::with_capacity(self.fields.len());
        for name in first_cut_first {
            let name = name.as_ref();
            let idx = self
                .fields
                .iter()
                .position(|f| f.name == name)
                .ok_or_else(|| TokenizeError::Template {
                    template: self.to_string(),
                    reason: format!("cut order names unknown field {name:?}"),
                })?;
            if order.contains(&idx) {
                return Err(TokenizeError::Template {
                    template: self.to_string(),
                    reason: format!("cut order names {name:?} twice"),
                });
            }
            order.push(idx);
        }
        if order.len() != self.fields.len() {
            return Err(TokenizeError::Template {
                template: self.to_string(),
                reason: "cut order must list every field".into(),
            });
        }
        self.set_order(order);
        Ok(self)
    }

    /// Field names in template order.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }

    /// Field names in truncation order, first cut first.
    pub fn cut_order(&self) -> impl Iterator<Item = &str> {
        self.cut_order.iter().map(|&i| self.fields[i].name.as_str())
    }

    /// The text an item renders to (what gets tokenized before truncation), or `None` when the
    /// item has none of the template's fields and no `text` field.
    pub fn render_text<F: FieldSource + ?Sized>(&self, item: &F) -> Option<String> {
        self.render(item).map(|r| r.text)
    }

    fn with_default_order(prefix: String, fields: Vec<TemplateField>, suffix: String) -> Self {
        // Reverse template order, then description first and title last.
        let mut order: Vec<usize> = (0..fields.len()).rev().collect();
        if let Some(p) = order.iter().position(|&i| fields[i].name == "description") {
            let d = order.remove(p);
            order.insert(0, d);
        }
        if let Some(p) = order.iter().position(|&i| fields[i].name == "title") {
            let t = order.remove(p);
            order.push(t);
        }
        let mut t = FieldTemplate {
            prefix,
            fields,
            suffix,
            cut_order: Vec::new(),
            rank: Vec::new(),
        };
        t.set_order(order);
        t
    }

    fn set_order(&mut self, order: Vec<usize>) {
        let mut rank = vec![0; order.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r;
        }
        self.cut_order = order;
        self.rank = rank;
    }

    pub(crate) fn render<F: FieldSource + ?Sized>(&self, item: &F) -> Option<Rendered> {
        let present_fields: Vec<(usize, &str)> = self
            .fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| present(item, &f.name).map(|v| (i, v)))
            .collect();
        if present_fields.is_empty() {
            // A plain `{text}` row: tokenized as is, no prefix/suffix (it is already joined).
            let text = present(item, TEXT_FIELD)?;
            return Some(Rendered {
                text: text.to_string(),
                spans: vec![Span {
                    range: 0..text.len(),
                    role: Role::Field(0),
                }],
                field_rank: vec![0],
                prefix_truncation: true,
            });
        }
        let mut text = String::new();
        let mut spans = Vec::with_capacity(2 * present_fields.len() + 1);
        let mut push = |text: &mut String, s: &str, role: Role| {
            if !s.is_empty() {
                let start = text.len();
                text.push_str(s);
                spans.push(Span {
                    range: start..text.len(),
                    role,
                });
            }
        };
        push(&mut text, &self.prefix, Role::Fixed);
        for (j, &(i, value)) in present_fields.iter().enumerate() {
            if j > 0 {
                push(&mut text, &self.fields[i].sep_before, Role::Sep(j));
            }
            push(&mut text, value, Role::Field(j));
        }
        push(&mut text, &self.suffix, Role::Fixed);
        let field_rank: Vec<usize> = present_fields.iter().map(|&(i, _)| self.rank[i]).collect();
        let prefix_truncation =
            self.suffix.is_empty() && field_rank.windows(2).all(|w| w[0] > w[1]);
        Some(Rendered {
            text,
            spans,
            field_rank,
            prefix_truncation,
        })
    }
}

impl Default for FieldTemplate {
    fn default() -> Self {
        Self::catalogue()
    }
}

impl FromStr for FieldTemplate {
    type Err = TokenizeError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// The template source text (braces in literals escaped); parses back to an equal template
/// up to the cut order.
impl fmt::Display for FieldTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(&self.prefix))?;
        for field in &self.fields {
            write!(f, "{}{{{}}}", escape(&field.sep_before), field.name)?;
        }
        f.write_str(&escape(&self.suffix))
    }
}

fn escape(s: &str) -> String {
    s.replace('{', "{{").replace('}', "}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_all_fields() {
        let t = FieldTemplate::catalogue();
        let it = item(&[
            ("title", "Pen"),
            ("brand", "Bic"),
            ("categories", "Office, Pens"),
            ("description", "Blue ink."),
        ]);
        assert_eq!(
            t.render_text(&it).unwrap(),
            "Pen | Bic | Office, Pens | Blue ink."
        );
    }

    #[test]
    fn missing_fields_drop_with_their_separator() {
        let t = FieldTemplate::catalogue();
        let it = item(&[("title", "Pen"), ("brand", " "), ("description", "Blue")]);
        assert_eq!(t.render_text(&it).unwrap(), "Pen | Blue");
        // First field missing: no leading separator.
        let it = item(&[("brand", "Bic"), ("categories", "Pens")]);
        assert_eq!(t.render_text(&it).unwrap(), "Bic | Pens");
    }

    #[test]
    fn different_separators_and_prefix_suffix() {
        let t = FieldTemplate::parse("<{title}> by {brand}; {description}.").unwrap();
        let it = item(&[("title", "Pen"), ("description", "Blue")]);
        // The separator before description (`; `) is the one kept.
        assert_eq!(t.render_text(&it).unwrap(), "<Pen; Blue.");
        let r = t.render(&it).unwrap();
        let roles: Vec<Role> = r.spans.iter().map(|s| s.role).collect();
        assert_eq!(
            roles,
            [
                Role::Fixed,
                Role::Field(0),
                Role::Sep(1),
                Role::Field(1),
                Role::Fixed
            ]
        );
        assert!(!r.prefix_truncation, "a suffix forbids prefix truncation");
    }

    #[test]
    fn plain_text_fallback() {
        let t = FieldTemplate::catalogue();
        assert_eq!(t.render_text("just text").unwrap(), "just text");
        assert_eq!(t.render_text("   "), None);
        let it = item(&[("title", "T"), ("text", "ignored when a field is present")]);
        assert_eq!(t.render_text(&it).unwrap(), "T");
        assert_eq!(
            FieldTemplate::plain_text().render_text("abc").unwrap(),
            "abc"
        );
    }

    #[test]
    fn joined_and_escape_roundtrip() {
        let t = FieldTemplate::joined(&["title", "brand"], " {x} ").unwrap();
        assert_eq!(t.to_string(), "{title} {{x}} {brand}");
        let it = item(&[("title", "A"), ("brand", "B")]);
        assert_eq!(t.render_text(&it).unwrap(), "A {x} B");
        assert_eq!(FieldTemplate::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn default_cut_order() {
        let t = FieldTemplate::catalogue();
        let order: Vec<&str> = t.cut_order().collect();
        assert_eq!(order, ["description", "categories", "brand", "title"]);
        let t = FieldTemplate::parse("{description} / {title} / {brand}").unwrap();
        let order: Vec<&str> = t.cut_order().collect();
        assert_eq!(order, ["description", "brand", "title"]);
        let t = t
            .with_cut_order(&["brand", "description", "title"])
            .unwrap();
        assert_eq!(
            t.cut_order().collect::<Vec<_>>(),
            ["brand", "description", "title"]
        );
    }

    #[test]
    fn prefix_truncation_only_for_monotone_order() {
        let it = item(&[("title", "A"), ("description", "B")]);
        assert!(
            FieldTemplate::catalogue()
                .render(&it)
                .unwrap()
                .prefix_truncation
        );
        let t = FieldTemplate::parse("{description} | {title}").unwrap();
        assert!(!t.render(&it).unwrap().prefix_truncation);
    }

    #[test]
    fn parse_errors() {
        for bad in ["no fields", "{title", "{}", "{a} {a}", "a } b", "{ti tle}"] {
            assert!(FieldTemplate::parse(bad).is_err(), "{bad:?} should fail");
        }
        let t = FieldTemplate::catalogue();
        assert!(t.clone().with_cut_order(&["title"]).is_err());
        assert!(t
            .clone()
            .with_cut_order(&["title", "title", "brand", "x"])
            .is_err());
    }
}
