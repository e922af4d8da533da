//! Word n-grams the way scikit-learn's `TfidfVectorizer` makes them by
//! default: lowercase, then tokens matching `(?u)\b\w\w+\b`, then n-grams
//! joined by one space.

/// Lowercased word tokens of two or more word characters.
///
/// `\b\w\w+\b` matches exactly the maximal runs of word characters that are
/// at least two characters long, so no regex is needed. A word character is
/// alphanumeric or `_`; Rust's `char::is_alphanumeric` and Python's `\w`
/// differ only on rare combining marks, which do not occur in English
/// catalogue text.
pub fn words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut chars = 0;
    for c in lower.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() || c == '_' {
            current.push(c);
            chars += 1;
        } else {
            if chars >= 2 {
                tokens.push(std::mem::take(&mut current));
            }
            current.clear();
            chars = 0;
        }
    }
    tokens
}

/// All n-grams for `n` in `min_n..=max_n` (unigrams first, then bigrams, ...),
/// like sklearn's `_word_ngrams`.
pub fn ngrams(tokens: &[String], min_n: usize, max_n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for n in min_n..=max_n.min(tokens.len()) {
        if n == 1 {
            out.extend(tokens.iter().cloned());
        } else {
            out.extend(tokens.windows(n).map(|w| w.join(" ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_like_sklearn() {
        // single characters dropped; punctuation splits; digits and _ are word
        // characters; non-ASCII letters kept
        assert_eq!(
            words("A4 Paper, 10-pack | I x self_inking Café!"),
            ["a4", "paper", "10", "pack", "self_inking", "café"]
        );
        assert!(words("").is_empty());
        assert!(words("a b c - !").is_empty());
        assert_eq!(words("HP12C's"), ["hp12c"]);
    }

    #[test]
    fn unigrams_then_bigrams() {
        let t = words("red pen blue pen");
        assert_eq!(
            ngrams(&t, 1, 2),
            ["red", "pen", "blue", "pen", "red pen", "pen blue", "blue pen"]
        );
        // a one-word document has no bigram
        assert_eq!(ngrams(&words("pen"), 1, 2), ["pen"]);
        assert!(ngrams(&[], 1, 2).is_empty());
    }
}
