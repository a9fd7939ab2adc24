//! Output files, with the facade's error type: the rules (atomic writes, outputs that are inputs or
//! not regular files refused before work) live in `ember_runtime::output`, one implementation for
//! every file Ember writes.

use std::path::Path;

use crate::Error;

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    ember_runtime::output::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}

/// Checks before any work that `out` may be written: a regular file (or none yet) in an existing,
/// writable directory, and none of `inputs`.
pub fn check_output(out: &Path, inputs: &[&Path]) -> Result<(), Error> {
    ember_runtime::output::check_output(out, inputs).map_err(|e| Error::io(out, e))
}
