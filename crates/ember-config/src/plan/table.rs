//! The plan as a readable table (what `ember plan` and `compose --dry-run` print).

use std::fmt;

use super::*;

impl Applied {
    /// A short label of this technique on this module, e.g. `W8 sym rows/48`, `A8 sym dynamic`,
    /// `rows l1 keep 40%`, `cols ← encoder.layer.0.intermediate.dense`.
    pub fn label(&self) -> String {
        let at = if self.schedule.start > 0 {
            format!(" @{}", self.schedule.start)
        } else {
            String::new()
        };
        let text = match (&self.params, &self.link) {
            (Params::WeightQuant(w), _) => w.label(),
            (Params::ActivationQuant(a), _) => format!(
                "A{} {} {}",
                a.bits,
                if a.quantization_type == QuantizationType::Symmetric {
                    "sym"
                } else {
                    "asym"
                },
                if a.range == RangeCalibration::Dynamic {
                    "per-token"
                } else {
                    "static"
                }
            ),
            (Params::Sparse(p), _) => {
                format!("sparse {} keep {}", method(p.method), pct(p.dense_ratio))
            }
            (Params::Row(p), Link::Main { with_related }) => {
                format!(
                    "rows {} keep {}{}",
                    method(p.method),
                    pct(p.dense_ratio),
                    if *with_related { "" } else { " (zeroed)" }
                )
            }
            (Params::Row(_), Link::Related { main }) => format!("cols ← {}", short(main)),
            (Params::Head(h), Link::Main { with_related }) => format!(
                "heads {} keep {}/{}{}",
                method(h.method),
                h.kept_heads,
                h.num_heads,
                if *with_related { "" } else { " (zeroed)" }
            ),
            (Params::Head(_), Link::Related { main }) => format!("head rows ← {}", short(main)),
            (Params::Channel(p), Link::Main { .. }) => {
                format!("channels {} keep {}", method(p.method), pct(p.dense_ratio))
            }
            (Params::Channel(_), Link::Related { main }) => {
                format!("in-channels ← {}", short(main))
            }
            (Params::Custom(v), _) => format!("{} {}", self.technique, v),
        };
        format!("{text}{at}")
    }
}

fn method(m: PruningMethod) -> &'static str {
    match m {
        PruningMethod::L1 => "l1",
        PruningMethod::Topk => "topk",
        PruningMethod::SnipMomentum => "snip",
    }
}

fn pct(r: f64) -> String {
    format!("{}%", (r * 1000.0).round() / 10.0)
}

/// The last three path components: `attention.output.dense`, `3.intermediate.dense`.
fn short(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    parts[parts.len().saturating_sub(3)..].join(".")
}

fn shape(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×")
}

/// Bytes as a human-readable figure (decimal megabytes, as file sizes are quoted).
pub fn human_bytes(b: u64) -> String {
    if b >= 1_000_000 {
        format!("{:.2} MB", b as f64 / 1e6)
    } else if b >= 1_000 {
        format!("{:.1} kB", b as f64 / 1e3)
    } else {
        format!("{b} B")
    }
}

impl Plan {
    /// What changes during training, one line per technique group: `(group pointer, schedule)`
    /// (weight quantization: its offset and MoQ's drops; other techniques: their start).
    pub fn schedules(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .weight_schedules()
            .into_iter()
            .map(|(pointer, s)| (pointer, s.describe()))
            .collect();
        for a in self.modules.iter().flat_map(|m| &m.techniques) {
            if !matches!(a.link, Link::Main { .. }) || out.iter().any(|(p, _)| p == &a.pointer) {
                continue;
            }
            let text = match &a.params {
                Params::WeightQuant(_) => continue,
                _ if a.schedule.start == 0 && a.schedule.end.is_none() => continue,
                _ => match a.schedule.end {
                    Some(end) if end > a.schedule.start => format!("from step {} to {end}", a.schedule.start),
                    _ => format!("from step {}", a.schedule.start),
                },
            };
            out.push((a.pointer.clone(), text));
        }
        out
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan for {} (numerics: {}, matching: {})",
            self.model,
            match self.numerics {
                Numerics::Ember => "ember",
                Numerics::Deepspeed => "deepspeed",
            },
            match self.match_mode {
                MatchMode::Search => "re.search",
                MatchMode::Full => "full match",
            }
        )?;
        if let Some(l) = &self.layers {
            writeln!(
                f,
                "layer reduction: {} → {} layers, student layer i ← teacher layer {:?} ({} dropped)",
                l.teacher_layers,
                l.keep.len(),
                l.keep,
                human_bytes(l.dropped_bytes)
            )?;
        }
        let rows: Vec<[String; 6]> = self
            .modules
            .iter()
            .map(|m| {
                let shape_text = if m.shape == m.shape_after {
                    shape(&m.shape)
                } else {
                    format!("{} → {}", shape(&m.shape), shape(&m.shape_after))
                };
                let techniques = if m.techniques.is_empty() {
                    "-".to_string()
                } else {
                    m.techniques.iter().map(Applied::label).collect::<Vec<_>>().join(" + ")
                };
                [
                    m.path.clone(),
                    shape_text,
                    techniques,
                    format!("{:.2}", m.bits_per_weight()),
                    format!("{} → {}", human_bytes(m.bytes_before), human_bytes(m.bytes_after)),
                    m.kernel.clone(),
                ]
            })
            .collect();
        let header = ["module", "shape", "techniques", "bits/w", "bytes", "kernel"].map(String::from);
        let mut widths = header.clone().map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, r: &[String; 6]| -> fmt::Result {
            let cells: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            writeln!(f, "{}", cells.join("  ").trim_end())
        };
        line(f, &header)?;
        writeln!(
            f,
            "{}",
            widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ")
        )?;
        for r in &rows {
            line(f, r)?;
        }
        let (before, after) = (self.bytes_before(), self.bytes_after());
        writeln!(
            f,
            "total: {} → {} ({:.2}× smaller; LayerNorms {} kept in f32)",
            human_bytes(before),
            human_bytes(after),
            before as f64 / after.max(1) as f64,
            human_bytes(self.other_param_bytes)
        )?;
        let touched = self.modules.iter().filter(|m| !m.techniques.is_empty()).count();
        writeln!(
            f,
            "{touched} of {} modules compressed; {}",
            self.modules.len(),
            if self.needs_training {
                "trained (the `training` section)"
            } else {
                "post-training (calibration only)"
            }
        )?;
        let schedules = self.schedules();
        if !schedules.is_empty() {
            writeln!(f, "schedule (optimizer steps):")?;
            for (what, text) in schedules {
                writeln!(f, "  {what}: {text}")?;
            }
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
