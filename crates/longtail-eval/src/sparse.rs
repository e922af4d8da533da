//! A compressed sparse row matrix: just what TF-IDF features and logistic
//! regression need.

/// Rows of `(column, value)` pairs, columns ascending within a row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsrMatrix {
    pub n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f64>,
}

impl CsrMatrix {
    pub fn new(n_cols: usize) -> Self {
        Self {
            n_cols,
            indptr: vec![0],
            ..Default::default()
        }
    }

    /// Appends a row; `entries` must have ascending, in-range columns.
    pub fn push_row(&mut self, entries: impl IntoIterator<Item = (u32, f64)>) {
        for (col, value) in entries {
            debug_assert!((col as usize) < self.n_cols);
            debug_assert!(
                self.indices.len() == *self.indptr.last().unwrap()
                    || *self.indices.last().unwrap() < col
            );
            self.indices.push(col);
            self.values.push(value);
        }
        self.indptr.push(self.indices.len());
    }

    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    pub fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let (s, e) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[s..e], &self.values[s..e])
    }

    /// `X w`.
    pub fn mul_vec(&self, w: &[f64]) -> Vec<f64> {
        (0..self.n_rows())
            .map(|i| {
                let (cols, vals) = self.row(i);
                cols.iter()
                    .zip(vals)
                    .map(|(&c, &v)| v * w[c as usize])
                    .sum()
            })
            .collect()
    }

    /// `X^T r`.
    pub fn mul_transpose_vec(&self, r: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_cols];
        for (i, &ri) in r.iter().enumerate() {
            let (cols, vals) = self.row(i);
            for (&c, &v) in cols.iter().zip(vals) {
                out[c as usize] += v * ri;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> CsrMatrix {
        // [[1, 0, 2],
        //  [0, 0, 0],
        //  [0, 3, 0]]
        let mut m = CsrMatrix::new(3);
        m.push_row([(0, 1.0), (2, 2.0)]);
        m.push_row([]);
        m.push_row([(1, 3.0)]);
        m
    }

    #[test]
    fn products_by_hand() {
        let m = example();
        assert_eq!((m.n_rows(), m.nnz()), (3, 3));
        assert_eq!(m.mul_vec(&[1.0, 10.0, 100.0]), [201.0, 0.0, 30.0]);
        assert_eq!(m.mul_transpose_vec(&[1.0, 5.0, 2.0]), [1.0, 6.0, 2.0]);
        assert_eq!(m.row(1), (&[][..], &[][..]));
    }
}
