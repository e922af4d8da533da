//! Stage 2: field-priority truncation.
//!
//! Tokens of the rendered text are mapped back to the field (or separator) they came from via
//! their byte offsets; then the content budget (`max_len - n_special`) is handed out field by
//! field in keep order (title first). A field that does not fit entirely is cut from its end and
//! every field ranked below it is dropped, so the description is always cut before the
//! categories, the categories before the brand, and the title last. A separator is kept only
//! between two fields that both kept tokens, and separator tokens count against the budget.

use std::ops::Range;

use crate::template::{Role, Span};

/// Role of each token, from its byte offsets in the rendered text.
///
/// A token overlapping one or more field spans belongs to the field it overlaps most (so a
/// byte-level `Ġword` whose offsets include the separator's space still counts as the word);
/// otherwise to the span its start falls in (separator, prefix or suffix).
pub(crate) fn token_roles(spans: &[Span], offsets: &[(usize, usize)]) -> Vec<Role> {
    offsets
        .iter()
        .map(|&(s, e)| {
            let first = spans
                .partition_point(|sp| sp.range.end <= s)
                .min(spans.len().saturating_sub(1));
            let mut best: Option<(usize, Role)> = None;
            for sp in spans[first..]
                .iter()
                .take_while(|sp| sp.range.start < e.max(s + 1))
            {
                if let Role::Field(_) = sp.role {
                    let ov = overlap(&sp.range, s, e);
                    if ov > 0 && best.is_none_or(|(b, _)| ov > b) {
                        best = Some((ov, sp.role));
                    }
                }
            }
            match best {
                Some((_, role)) => role,
                None => spans.get(first).map_or(Role::Fixed, |sp| sp.role),
            }
        })
        .collect()
}

fn overlap(r: &Range<usize>, s: usize, e: usize) -> usize {
    if s == e {
        // Zero-width token: it "overlaps" the span containing its position.
        usize::from(r.contains(&s))
    } else {
        e.min(r.end).saturating_sub(s.max(r.start))
    }
}

/// Which tokens to keep so that at most `budget` remain, cutting by field rank
/// (`field_rank[j]` = rank of present field `j`, 0 = cut first). Returns `None` when everything
/// fits (keep all).
pub(crate) fn plan(roles: &[Role], field_rank: &[usize], budget: usize) -> Option<Vec<bool>> {
    if roles.len() <= budget {
        return None;
    }
    let n = field_rank.len();
    let mut field_len = vec![0usize; n];
    let mut sep_len = vec![0usize; n];
    let mut fixed = 0usize;
    for r in roles {
        match *r {
            Role::Fixed => fixed += 1,
            Role::Field(j) => field_len[j] += 1,
            Role::Sep(j) => sep_len[j] += 1,
        }
    }

    // Prefix/suffix first; if they alone overflow, keep the first `budget` of them.
    let mut remaining = budget.saturating_sub(fixed);
    let mut fixed_left = budget.min(fixed);

    // Keep order: highest rank (cut last) first.
    let mut keep_order: Vec<usize> = (0..n).collect();
    keep_order.sort_by(|&a, &b| field_rank[b].cmp(&field_rank[a]));

    let mut alloc = vec![0usize; n];
    let mut kept = vec![false; n];
    let mut sep_cost = 0usize; // separator tokens implied by `kept`
    for &j in &keep_order {
        // Separators needed if j joins: every kept field except the first in text order owns one.
        kept[j] = true;
        let new_cost = separator_cost(&kept, &sep_len);
        let delta = new_cost - sep_cost;
        let take = field_len[j].min(remaining.saturating_sub(delta));
        if take == 0 {
            kept[j] = false;
        } else {
            alloc[j] = take;
            remaining -= take + delta;
            sep_cost = new_cost;
        }
        if take < field_len[j] {
            // j was cut: every lower-ranked field is dropped entirely.
            break;
        }
    }

    let first_kept = kept.iter().position(|&k| k);
    let mut used = vec![0usize; n];
    let keep = roles
        .iter()
        .map(|r| match *r {
            Role::Fixed => {
                let k = fixed_left > 0;
                fixed_left = fixed_left.saturating_sub(1);
                k
            }
            Role::Field(j) => {
                used[j] += 1;
                used[j] <= alloc[j]
            }
            Role::Sep(j) => kept[j] && Some(j) != first_kept,
        })
        .collect();
    Some(keep)
}

fn separator_cost(kept: &[bool], sep_len: &[usize]) -> usize {
    let mut iter = kept.iter().zip(sep_len).filter(|(k, _)| **k);
    iter.next(); // the first kept field in text order has no separator
    iter.map(|(_, l)| l).sum()
}

/// After an early-exit (prefix) encode cut at the budget, separator tokens at the very end
/// belong to a field that got no tokens: drop them. Returns the number of tokens to keep.
pub(crate) fn trim_dangling_separators(roles: &[Role]) -> usize {
    roles
        .iter()
        .rposition(|r| !matches!(r, Role::Sep(_)))
        .map_or(0, |p| p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    use Role::{Field as F, Fixed as X, Sep as S};

    fn spans(parts: &[(usize, usize, Role)]) -> Vec<Span> {
        parts
            .iter()
            .map(|&(s, e, role)| Span { range: s..e, role })
            .collect()
    }

    #[test]
    fn roles_from_offsets() {
        // "Pen | Bic": field0 0..3, sep1 3..6, field1 6..9
        let sp = spans(&[(0, 3, F(0)), (3, 6, S(1)), (6, 9, F(1))]);
        let roles = token_roles(&sp, &[(0, 3), (4, 5), (6, 9)]);
        assert_eq!(roles, [F(0), S(1), F(1)]);
        // Byte-level style: " Bic" token includes the separator's trailing space.
        let roles = token_roles(&sp, &[(0, 3), (3, 5), (5, 9)]);
        assert_eq!(roles, [F(0), S(1), F(1)]);
        // Zero-width token inside a field.
        assert_eq!(token_roles(&sp, &[(7, 7)]), [F(1)]);
    }

    #[test]
    fn roles_with_prefix() {
        let sp = spans(&[(0, 2, X), (2, 5, F(0)), (5, 7, X)]);
        assert_eq!(token_roles(&sp, &[(0, 2), (2, 5), (5, 7)]), [X, F(0), X]);
    }

    #[test]
    fn fits_keeps_all() {
        assert_eq!(plan(&[F(0), S(1), F(1)], &[1, 0], 3), None);
    }

    #[test]
    fn cuts_lowest_rank_first_and_keeps_title() {
        // title(rank 3) 3 tokens | brand(2) 2 | desc(0) 5
        let roles = [
            F(0),
            F(0),
            F(0),
            S(1),
            F(1),
            F(1),
            S(2),
            F(2),
            F(2),
            F(2),
            F(2),
            F(2),
        ];
        let keep = plan(&roles, &[3, 2, 0], 9).unwrap();
        let kept: Vec<Role> = roles
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(r, _)| *r)
            .collect();
        assert_eq!(kept, [F(0), F(0), F(0), S(1), F(1), F(1), S(2), F(2), F(2)]);
        // Budget leaves exactly the separator for desc: the separator goes too.
        let keep = plan(&roles, &[3, 2, 0], 7).unwrap();
        assert_eq!(keep.iter().filter(|k| **k).count(), 6);
        assert!(!keep[6]);
        // Tiny budget: only the title, cut from its end.
        let keep = plan(&roles, &[3, 2, 0], 2).unwrap();
        assert_eq!(&keep[..3], &[true, true, false]);
        assert!(keep[3..].iter().all(|k| !k));
    }

    #[test]
    fn title_kept_even_when_description_comes_first() {
        // desc(rank 0) 4 tokens, sep, title(rank 1) 2 tokens; budget 4
        let roles = [F(0), F(0), F(0), F(0), S(1), F(1), F(1)];
        let keep = plan(&roles, &[0, 1], 4).unwrap();
        // title 2 + separator 1 + 1 description token
        assert_eq!(keep, [true, false, false, false, true, true, true]);
        // Budget 2: only the title; the separator no longer has a field before it.
        let keep = plan(&roles, &[0, 1], 2).unwrap();
        assert_eq!(keep, [false, false, false, false, false, true, true]);
    }

    #[test]
    fn lower_fields_dropped_once_a_field_is_cut() {
        // title 2, long separator (3) before brand 2, short separator (1) before desc 2
        let roles = [F(0), F(0), S(1), S(1), S(1), F(1), F(1), S(2), F(2), F(2)];
        // Budget 4: brand can't fit even one token after its separator; desc must not jump ahead.
        let keep = plan(&roles, &[2, 1, 0], 4).unwrap();
        assert_eq!(keep.iter().filter(|k| **k).count(), 2);
    }

    #[test]
    fn fixed_tokens_are_kept() {
        let roles = [X, F(0), F(0), F(0), X];
        let keep = plan(&roles, &[0], 4).unwrap();
        assert_eq!(keep, [true, true, true, false, true]);
    }

    #[test]
    fn dangling_separators() {
        assert_eq!(trim_dangling_separators(&[F(0), S(1), S(1)]), 1);
        assert_eq!(trim_dangling_separators(&[F(0), S(1), F(1)]), 3);
        assert_eq!(trim_dangling_separators(&[]), 0);
    }
}
