//! The files of a plan directory besides `plan.json`: fitted ID-model artefacts (EASE's
//! weights, item-kNN's similarities, popularity counts) as safetensors, and the sha256 checks
//! that tie a plan to its checkpoints, artefacts and catalogue.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::checkpoint::InterestCheckpoint;
use crate::error::{InterestError, Result};

/// The one tensor of an artefact file.
const TENSOR: &str = "values";

/// Serialises `values` with `shape` as an artefact file's bytes.
pub fn artefact_bytes(values: &[f32], shape: Vec<usize>) -> Result<Vec<u8>> {
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)
        .map_err(|e| InterestError::invalid(format!("plan artefact: {e}")))?;
    safetensors::serialize([(TENSOR, view)], None)
        .map_err(|e| InterestError::invalid(format!("plan artefact: {e}")))
}

/// Reads an artefact, checking its sha256 when `sha256` is given; returns values and shape.
pub fn read_artefact(path: &Path, sha256: Option<&str>) -> Result<(Vec<f32>, Vec<usize>)> {
    let data = std::fs::read(path).map_err(|e| InterestError::io(path, e))?;
    if let Some(want) = sha256 {
        let got = sha256_hex(&data);
        if got != want {
            return Err(InterestError::invalid(format!(
                "{}: sha256 {got} differs from the plan's {want} (the file changed after \
                 `longtail plan` wrote it)",
                path.display()
            )));
        }
    }
    let st = safetensors::SafeTensors::deserialize(&data)
        .map_err(|e| InterestError::invalid(format!("{}: {e}", path.display())))?;
    let t = st
        .tensor(TENSOR)
        .map_err(|e| InterestError::invalid(format!("{}: {e}", path.display())))?;
    let values = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((values, t.shape().to_vec()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// sha256 over an interest checkpoint's settings and weights (`interest.json`, and the
/// sequence weights when present): what a plan records and checks at load.
pub fn checkpoint_sha256(ckpt: &Path) -> Result<String> {
    let c = InterestCheckpoint::open(ckpt)?;
    Ok(longtail_fs::files_sha256(
        c.dir(),
        &InterestCheckpoint::PLAN_PINNED_FILES,
    )?)
}

/// sha256 of a catalogue's item ids in order (a plan's matrices are indexed by it).
pub fn item_ids_sha256<S: AsRef<str>>(ids: &[S]) -> String {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_ref().as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artefacts_round_trip_and_a_changed_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ease.safetensors");
        let bytes = artefact_bytes(&[1.0, 2.0, 3.0, 4.0], vec![2, 2]).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let sha = sha256_hex(&bytes);
        let (v, shape) = read_artefact(&path, Some(&sha)).unwrap();
        assert_eq!((v, shape), (vec![1.0, 2.0, 3.0, 4.0], vec![2, 2]));
        let other = artefact_bytes(&[1.0, 2.0, 3.0, 5.0], vec![2, 2]).unwrap();
        std::fs::write(&path, other).unwrap();
        let err = read_artefact(&path, Some(&sha)).unwrap_err().to_string();
        assert!(err.contains("sha256"), "{err}");
        assert_ne!(item_ids_sha256(&["a", "b"]), item_ids_sha256(&["b", "a"]));
    }
}
