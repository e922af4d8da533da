//! Stage 4: dynamic padding. Rows are padded on the right to the longest row of the batch
//! (not to `max_len`), so short-title batches stay cheap.

/// Token ids of one item, special tokens included, not padded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Some content of the rendered text did not make it into `ids`.
    pub truncated: bool,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Padding token and its type id, as found in the tokenizer file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PadSpec {
    pub pad_id: u32,
    pub pad_type_id: u32,
}

/// A padded batch. The three tensors are flat, row-major, shape `[batch_size, seq_len]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub input_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// Unpadded length of each row.
    pub lengths: Vec<usize>,
    /// Position of each row in the caller's input (e.g. item index), in batch order.
    pub indices: Vec<usize>,
    /// Longest row in the batch = padded length.
    pub seq_len: usize,
}

impl Batch {
    pub fn batch_size(&self) -> usize {
        self.lengths.len()
    }

    /// `[batch_size, seq_len]`.
    pub fn shape(&self) -> (usize, usize) {
        (self.batch_size(), self.seq_len)
    }

    /// Padded ids of row `r`.
    pub fn row_ids(&self, r: usize) -> &[u32] {
        &self.input_ids[r * self.seq_len..(r + 1) * self.seq_len]
    }

    pub fn row_mask(&self, r: usize) -> &[u32] {
        &self.attention_mask[r * self.seq_len..(r + 1) * self.seq_len]
    }

    /// Real (non-pad) tokens in the batch.
    pub fn num_tokens(&self) -> usize {
        self.lengths.iter().sum()
    }
}

/// Pads `rows` to the longest one. `indices[r]` is recorded as the origin of `rows[r]`.
///
/// # Panics
/// If `rows` and `indices` differ in length.
pub fn pad_batch(rows: &[&Encoded], indices: Vec<usize>, pad: PadSpec) -> Batch {
    assert_eq!(rows.len(), indices.len(), "one index per row");
    let seq_len = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let n = rows.len() * seq_len;
    let mut batch = Batch {
        input_ids: Vec::with_capacity(n),
        attention_mask: Vec::with_capacity(n),
        token_type_ids: Vec::with_capacity(n),
        lengths: Vec::with_capacity(rows.len()),
        indices,
        seq_len,
    };
    for row in rows {
        let pad_n = seq_len - row.len();
        batch.input_ids.extend_from_slice(&row.ids);
        batch
            .input_ids
            .extend(std::iter::repeat_n(pad.pad_id, pad_n));
        batch
            .attention_mask
            .extend(std::iter::repeat_n(1, row.len()).chain(std::iter::repeat_n(0, pad_n)));
        batch.token_type_ids.extend_from_slice(&row.type_ids);
        batch
            .token_type_ids
            .extend(std::iter::repeat_n(pad.pad_type_id, pad_n));
        batch.lengths.push(row.len());
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ids: &[u32]) -> Encoded {
        Encoded {
            ids: ids.to_vec(),
            type_ids: vec![0; ids.len()],
            truncated: false,
        }
    }

    #[test]
    fn pads_to_longest_row() {
        let a = enc(&[101, 7, 8, 102]);
        let b = enc(&[101, 9, 102]);
        let pad = PadSpec {
            pad_id: 0,
            pad_type_id: 0,
        };
        let batch = pad_batch(&[&a, &b], vec![5, 2], pad);
        assert_eq!(batch.shape(), (2, 4));
        assert_eq!(batch.input_ids, [101, 7, 8, 102, 101, 9, 102, 0]);
        assert_eq!(batch.attention_mask, [1, 1, 1, 1, 1, 1, 1, 0]);
        assert_eq!(batch.token_type_ids, [0; 8]);
        assert_eq!(batch.lengths, [4, 3]);
        assert_eq!(batch.indices, [5, 2]);
        assert_eq!(batch.row_ids(1), [101, 9, 102, 0]);
        assert_eq!(batch.num_tokens(), 7);
    }

    #[test]
    fn custom_pad_ids() {
        let a = enc(&[1, 2]);
        let b = enc(&[3]);
        let pad = PadSpec {
            pad_id: 99,
            pad_type_id: 3,
        };
        let batch = pad_batch(&[&a, &b], vec![0, 1], pad);
        assert_eq!(batch.input_ids, [1, 2, 3, 99]);
        assert_eq!(batch.token_type_ids, [0, 0, 0, 3]);
    }

    #[test]
    fn empty_batch() {
        let pad = PadSpec {
            pad_id: 0,
            pad_type_id: 0,
        };
        let batch = pad_batch(&[], vec![], pad);
        assert_eq!(batch.shape(), (0, 0));
    }
}
