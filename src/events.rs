//! `--events FILE`: progress events as JSON lines (`{"event": …, "t": seconds, …}`) for tools.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::Error;

/// An optional JSON-lines event sink.
pub struct Events {
    out: Option<(std::fs::File, String)>,
    start: Instant,
}

impl Events {
    /// Opens (truncates) the event file, or a sink that drops events.
    pub fn open(path: Option<&Path>) -> Result<Events, Error> {
        let out = match path {
            None => None,
            Some(p) => Some((
                std::fs::File::create(p).map_err(|e| Error::io(p, e))?,
                p.display().to_string(),
            )),
        };
        Ok(Events {
            out,
            start: Instant::now(),
        })
    }

    /// Writes one event line.
    pub fn emit(&mut self, event: &str, data: &serde_json::Value) -> Result<(), Error> {
        let Some((file, path)) = &mut self.out else {
            return Ok(());
        };
        let mut line = serde_json::json!({ "event": event, "t": self.start.elapsed().as_secs_f64() });
        if let (Some(obj), Some(extra)) = (line.as_object_mut(), data.as_object()) {
            obj.extend(extra.clone());
        }
        writeln!(file, "{line}").map_err(|e| Error::io(path.as_str(), e))
    }
}
