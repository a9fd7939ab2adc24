//! Checkpoints: everything a resumed run needs to continue exactly where it stopped — the
//! model's parameters (burnpack, with their parameter ids), the optimizer's state (AdamW's
//! moments, keyed by those ids), the step (the schedule and the data order are functions of it)
//! — in one file, written atomically (an interrupted write leaves the previous checkpoint), with
//! a digest so a truncated or altered file is refused, and a fingerprint of the run (config and
//! model) so a checkpoint of another run is refused rather than silently mixed in.
//!
//! Layout: `EMBERCKPT1\n`, the header length (u64 LE), the header (JSON: format, step,
//! fingerprint, byte counts, technique state, sha256 of what follows and of that state), the model
//! record, the optimizer record.

use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MAGIC: &[u8] = b"EMBERCKPT1\n";
/// The largest header read (real ones are about 300 bytes).
const MAX_HEADER: u64 = 1 << 20;
/// The largest checkpoint read: far above MiniLM's (22.7 M parameters and two moments each,
/// about 280 MB), small enough that a wrong file is refused before it is read.
pub const MAX_CHECKPOINT_BYTES: u64 = 16 << 30;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: u32,
    step: u64,
    fingerprint: String,
    model_bytes: u64,
    optimizer_bytes: u64,
    sha256: String,
    /// Technique state a step does not determine (MoQ's eigenvalue period factors), covered by
    /// the digest.
    #[serde(default)]
    state: serde_json::Value,
}

/// What a checkpoint holds, read back and checked.
#[derive(Debug)]
pub struct Checkpoint {
    /// Optimizer steps taken when it was written.
    pub step: u64,
    /// The run it belongs to (see the module docs).
    pub fingerprint: String,
    /// Technique state a step does not determine (null when there is none).
    pub state: serde_json::Value,
    model: Vec<u8>,
    optimizer: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Checkpoint {
    /// The file bytes of a checkpoint of `model` and `optim` after `step` steps.
    pub fn encode<M: Module>(
        model: &M,
        optim: &ModuleOptimizer,
        step: u64,
        fingerprint: &str,
        state: &serde_json::Value,
    ) -> Result<Vec<u8>, String> {
        let model_bytes = model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| format!("cannot serialize the model: {e:?}"))?;
        let optim_bytes = optim
            .into_bytes()
            .map_err(|e| format!("cannot serialize the optimizer state: {e:?}"))?;
        let mut sha = Sha256::new();
        sha.update(&model_bytes[..]);
        sha.update(&optim_bytes[..]);
        sha.update(state.to_string().as_bytes());
        let header = serde_json::to_vec(&Header {
            format: 1,
            step,
            fingerprint: fingerprint.to_string(),
            model_bytes: model_bytes.len() as u64,
            optimizer_bytes: optim_bytes.len() as u64,
            sha256: hex(&sha.finalize()),
            state: state.clone(),
        })
        .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + header.len() + model_bytes.len() + optim_bytes.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&model_bytes[..]);
        out.extend_from_slice(&optim_bytes[..]);
        Ok(out)
    }

    /// Reads and checks checkpoint bytes: layout, sizes, digest. The message says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or("not an Ember checkpoint (it does not start with `EMBERCKPT1`)")?;
        let (len, rest) = rest
            .split_at_checked(8)
            .ok_or("the checkpoint is truncated (no header)")?;
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
        if len > MAX_HEADER || len > rest.len() as u64 {
            return Err(format!(
                "the checkpoint is truncated or corrupt (a header of {len} bytes, {} bytes left)",
                rest.len()
            ));
        }
        let (header, data) = rest.split_at(len as usize);
        let h: Header =
            serde_json::from_slice(header).map_err(|e| format!("the checkpoint's header is corrupt: {e}"))?;
        if h.format != 1 {
            return Err(format!(
                "checkpoint format {} is not one this Ember reads (1)",
                h.format
            ));
        }
        let want = h.model_bytes.checked_add(h.optimizer_bytes);
        if want != Some(data.len() as u64) {
            return Err(format!(
                "the checkpoint is truncated or corrupt: the header promises {} + {} bytes, the file holds {}",
                h.model_bytes,
                h.optimizer_bytes,
                data.len()
            ));
        }
        let mut sha = Sha256::new();
        sha.update(data);
        sha.update(h.state.to_string().as_bytes());
        if hex(&sha.finalize()) != h.sha256 {
            return Err("the checkpoint is corrupt: its data does not match its sha256".into());
        }
        let (model, optimizer) = data.split_at(h.model_bytes as usize);
        Ok(Checkpoint {
            step: h.step,
            fingerprint: h.fingerprint,
            state: h.state,
            model: model.to_vec(),
            optimizer: optimizer.to_vec(),
        })
    }

    /// Reads a checkpoint file (bounded) and checks it.
    pub fn read(path: &Path) -> Result<Checkpoint, String> {
        let size = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        if size > MAX_CHECKPOINT_BYTES {
            return Err(format!(
                "{}: {size} bytes, larger than the {MAX_CHECKPOINT_BYTES}-byte limit for a checkpoint",
                path.display()
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Checkpoint::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes checkpoint bytes atomically (the previous checkpoint stays until the new one is
    /// complete).
    pub fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
        ember_runtime::output::write_atomic(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Refuses a checkpoint of another run.
    pub fn check_fingerprint(&self, fingerprint: &str) -> Result<(), String> {
        if self.fingerprint != fingerprint {
            return Err(format!(
                "the checkpoint belongs to another run (another config or model: fingerprint {} ≠ {fingerprint}); resume with the config and model that wrote it, or start afresh",
                self.fingerprint
            ));
        }
        Ok(())
    }

    /// `model` with the checkpoint's parameters (and parameter ids); it must have the same
    /// structure.
    pub fn restore_model<M: Module>(&self, model: M) -> Result<M, String> {
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.model.clone()))
            .map_err(|e| format!("the checkpoint's model record is corrupt: {e:?}"))?;
        model
            .try_load_record(record)
            .map_err(|e| format!("the checkpoint's model does not fit this model: {e:?}"))
    }

    /// `optim` with the checkpoint's state.
    pub fn restore_optimizer(&self, optim: ModuleOptimizer) -> Result<ModuleOptimizer, String> {
        optim
            .from_bytes(Bytes::from_bytes_vec(self.optimizer.clone()))
            .map_err(|e| format!("the checkpoint's optimizer state is corrupt: {e:?}"))
    }
}
