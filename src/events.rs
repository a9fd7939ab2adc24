//! `--events FILE`: progress events as JSON lines (`{"event": …, "t": seconds, …}`) for tools.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::Error;

/// An optional JSON-lines event sink.
pub struct Events {
    path: Option<PathBuf>,
    file: Option<std::fs::File>,
    start: Instant,
}

impl Events {
    /// A sink for `path` (or one that drops events). The path is checked now (a regular file, not
    /// one of `inputs`) but the file is created (truncated) only by the first event, which the
    /// pipeline emits once the config has validated and planned: a refused run leaves it alone.
    pub fn open(path: Option<&Path>, inputs: &[&Path]) -> Result<Events, Error> {
        if let Some(p) = path {
            crate::fsutil::check_output(p, inputs)?;
        }
        Ok(Events {
            path: path.map(Path::to_path_buf),
            file: None,
            start: Instant::now(),
        })
    }

    /// Writes one event line.
    pub fn emit(&mut self, event: &str, data: &serde_json::Value) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.file.is_none() {
            self.file = Some(std::fs::File::create(path).map_err(|e| Error::io(path, e))?);
        }
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let mut line = serde_json::json!({ "event": event, "t": self.start.elapsed().as_secs_f64() });
        if let (Some(obj), Some(extra)) = (line.as_object_mut(), data.as_object()) {
            obj.extend(extra.clone());
        }
        writeln!(file, "{line}").map_err(|e| Error::io(path, e))
    }
}
