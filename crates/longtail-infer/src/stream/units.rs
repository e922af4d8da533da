//! Inputs of many files ([`InputSet`]): the units they are read in, and which shard owns each.
//!
//! A unit is a whole JSONL or CSV file (gzip streams cannot be entered in the middle) or one
//! row group of a parquet file. Lay the files end to end in listing order, `T` bytes in all;
//! shard `k` of `N` owns the units whose middle byte falls in `[k*T/N, (k+1)*T/N)`. Nothing
//! is counted first: the rule needs only file sizes, plus the footers of the parquet files
//! that reach into the shard's byte range. Each unit is read by exactly one shard, the units
//! of a shard are contiguous in listing order, and chunks never span units, so an unsharded
//! run forms the same batches and the parts concatenated in shard order are its bytes.

use std::path::Path;

use longtail_data::{Format, InputSet, ParquetLayout, RecordReader};

use super::Shard;
use crate::error::Result;

/// One unit owned by this shard.
pub(super) struct Unit {
    /// Index into the input set's files.
    pub(super) file: usize,
    /// The parquet row group, or `None` for the whole file.
    pub(super) row_group: Option<usize>,
    /// On-disk bytes of the unit (the file, or the group's column chunks).
    pub(super) bytes: u64,
    /// Rows, where the footer says (parquet).
    pub(super) rows: Option<u64>,
}

/// This shard's share of a many-file input.
pub(super) struct SetPlan {
    pub(super) set: InputSet,
    /// Footers read for the plan, by file (only the parquet files reaching into this shard).
    pub(super) layouts: Vec<Option<ParquetLayout>>,
    pub(super) units: Vec<Unit>,
    /// Bytes read to make the plan (those footers).
    pub(super) footer_bytes: u64,
}

impl SetPlan {
    pub(super) fn new(set: InputSet, shard: Shard) -> Result<Self> {
        let total = set.total_bytes();
        let owner = |byte: u64| -> u64 {
            if total == 0 {
                return 0;
            }
            ((byte as u128 * shard.count as u128 / total as u128) as u64).min(shard.count - 1)
        };
        let mut layouts = Vec::with_capacity(set.files.len());
        let mut units = Vec::new();
        let mut footer_bytes = 0;
        let mut offset = 0u64;
        for (i, file) in set.files.iter().enumerate() {
            let (first, last) = (offset, offset + file.len.saturating_sub(1));
            let reaches_in = owner(first) <= shard.index && shard.index <= owner(last);
            let mut layout = None;
            if file.format == Format::Parquet && reaches_in {
                let l = ParquetLayout::open(&file.path)?;
                footer_bytes += l.footer_bytes();
                for (g, span) in l.row_groups().iter().enumerate() {
                    if owner(offset + span.start + span.len / 2) == shard.index {
                        units.push(Unit {
                            file: i,
                            row_group: Some(g),
                            bytes: span.len,
                            rows: Some(span.rows),
                        });
                    }
                }
                layout = Some(l);
            } else if file.format != Format::Parquet && owner(offset + file.len / 2) == shard.index
            {
                units.push(Unit {
                    file: i,
                    row_group: None,
                    bytes: file.len,
                    rows: None,
                });
            }
            layouts.push(layout);
            offset += file.len;
        }
        Ok(Self {
            set,
            layouts,
            units,
            footer_bytes,
        })
    }

    /// Opens unit `u` of this plan for reading.
    pub(super) fn open(&self, u: usize, read: longtail_data::ReadOptions) -> Result<RecordReader> {
        let unit = &self.units[u];
        let file = &self.set.files[unit.file];
        Ok(match unit.row_group {
            Some(g) => {
                let layout = self.layouts[unit.file]
                    .as_ref()
                    .expect("a row group's file has its layout");
                RecordReader::open_row_group(layout, g)?
            }
            None => RecordReader::open(&file.path, read)?,
        })
    }

    /// The name rejects of unit `u` carry.
    pub(super) fn file_name(&self, u: usize) -> &str {
        &self.set.files[self.units[u].file].name
    }

    /// Bytes of this shard's units.
    pub(super) fn bytes(&self) -> u64 {
        self.units.iter().map(|u| u.bytes).sum()
    }

    /// Rows of this shard, when every unit's count is known without reading it.
    pub(super) fn rows(&self) -> Option<u64> {
        self.units.iter().map(|u| u.rows).sum()
    }

    /// The input's identity for resume and merge: every file's name and size, in order.
    pub(super) fn listing_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for f in &self.set.files {
            h.update(f.name.as_bytes());
            h.update(b"\t");
            h.update(f.len.to_string().as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }

    /// The input files, for the check that the output overwrites none of them.
    pub(super) fn paths(&self) -> impl Iterator<Item = &Path> {
        self.set.files.iter().map(|f| f.path.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use longtail_data::{InputFile, InputKind};
    use std::path::PathBuf;

    fn set(lens: &[u64]) -> InputSet {
        InputSet {
            spec: "dir".into(),
            kind: InputKind::Directory,
            files: lens
                .iter()
                .enumerate()
                .map(|(i, &len)| InputFile {
                    path: PathBuf::from(format!("/nonexistent/{i}.jsonl")),
                    name: format!("{i}.jsonl"),
                    len,
                    format: Format::Jsonl,
                })
                .collect(),
        }
    }

    #[test]
    fn every_file_goes_to_one_shard_in_order() {
        let lens = [100, 5, 0, 300, 40, 40, 1, 900];
        for n in 1..=10u64 {
            let mut owned = Vec::new();
            for k in 0..n {
                let plan = SetPlan::new(set(&lens), Shard { index: k, count: n }).unwrap();
                owned.extend(plan.units.iter().map(|u| u.file));
            }
            assert_eq!(owned, (0..lens.len()).collect::<Vec<_>>(), "n {n}");
        }
        let plan = SetPlan::new(set(&lens), Shard::default()).unwrap();
        assert_eq!(plan.bytes(), lens.iter().sum::<u64>());
        assert_eq!(plan.rows(), None);
        assert_eq!(plan.footer_bytes, 0);
    }
}
