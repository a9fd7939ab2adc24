//! Whether a [`CompressedModel`] is one the artifact can hold and the engine can run: the
//! architecture is sane, every tensor has the shape the architecture says, codes are in their
//! scheme's range, every float is finite. The writer runs it before touching the disk and the
//! reader after decoding, so a file that was written can always be read back.

use ember_numerics::FloatFormat;
use ember_numerics::{MiniFloat, Scheme, code_value};

use crate::artifact::MAX_TOKENIZER_BYTES;
use crate::model::{ActRange, ActSpec, Architecture, CompressedLinear, CompressedModel, LayerNormParams, Weight};
use crate::names;
use crate::quant_tensor::{QuantTensor, Zeros};

/// The dimensions of one layer's weights.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckedLayer {
    /// `n_heads · head_dim`.
    pub attn: usize,
    pub d_ff: usize,
}

/// The largest dimension (rows or columns of any weight) the artifact accepts: far above real
/// encoders (vocabularies of 250k, widths of 16k) and small enough that no size computed from
/// two dimensions can overflow.
pub(crate) const MAX_DIM: usize = 1 << 24;

fn check_dim(v: usize, at: &str, p: &mut Vec<String>) {
    if v == 0 {
        p.push(format!("{at}: 0; must be at least 1"));
    } else if v > MAX_DIM {
        p.push(format!("{at}: {v} is over the limit of {MAX_DIM}"));
    }
}

/// Problems with the architecture itself; on success the per-layer dimensions.
pub(crate) fn check_arch(a: &Architecture, at: &str) -> Result<Vec<CheckedLayer>, Vec<String>> {
    let mut p = Vec::new();
    if a.family != "bert" {
        p.push(format!(
            "{at}.family: `{}` is not supported; this Ember runs `bert` encoders",
            a.family
        ));
    }
    for (key, v) in [
        ("vocab_size", a.vocab_size),
        ("d_model", a.d_model),
        ("max_positions", a.max_positions),
        ("type_vocab_size", a.type_vocab_size),
        ("max_seq_length", a.max_seq_length),
    ] {
        check_dim(v, &format!("{at}.{key}"), &mut p);
    }
    if a.max_seq_length > a.max_positions {
        p.push(format!(
            "{at}.max_seq_length: {} exceeds max_positions ({})",
            a.max_seq_length, a.max_positions
        ));
    }
    if !(a.layer_norm_eps.is_finite() && a.layer_norm_eps > 0.0) {
        p.push(format!(
            "{at}.layer_norm_eps: {}; must be finite and positive",
            a.layer_norm_eps
        ));
    }
    if a.kept_layers.len() != a.layers.len() {
        p.push(format!(
            "{at}.kept_layers: {} indices for {} layers",
            a.kept_layers.len(),
            a.layers.len()
        ));
    }
    if a.kept_layers.windows(2).any(|w| w[0] >= w[1]) {
        p.push(format!(
            "{at}.kept_layers: {:?} is not strictly ascending",
            a.kept_layers
        ));
    }
    let mut dims = Vec::with_capacity(a.layers.len());
    for (i, l) in a.layers.iter().enumerate() {
        for (key, v) in [("n_heads", l.n_heads), ("head_dim", l.head_dim), ("d_ff", l.d_ff)] {
            check_dim(v, &format!("{at}.layers[{i}].{key}"), &mut p);
        }
        let attn = l.n_heads.saturating_mul(l.head_dim);
        if attn > MAX_DIM {
            p.push(format!(
                "{at}.layers[{i}]: n_heads × head_dim = {attn} is over the limit of {MAX_DIM}"
            ));
        }
        dims.push(CheckedLayer { attn, d_ff: l.d_ff });
    }
    if p.is_empty() { Ok(dims) } else { Err(p) }
}

/// At most this many problems are listed in one message.
const MAX_LISTED: usize = 20;

/// One message for a list of problems: the problem itself, or a count and one per line.
pub(crate) fn join_problems(problems: Vec<String>) -> String {
    match problems.len() {
        0 => "unknown problem".into(),
        1 => problems.into_iter().next().unwrap_or_default(),
        n => {
            let mut s = format!("{n} problems:");
            for p in problems.iter().take(MAX_LISTED) {
                s.push_str("\n  - ");
                s.push_str(p);
            }
            if n > MAX_LISTED {
                s.push_str(&format!("\n  - … and {} more", n - MAX_LISTED));
            }
            s
        }
    }
}

/// Every problem of `m` (empty: the model can be written and run).
pub(crate) fn check_model(m: &CompressedModel) -> Vec<String> {
    let dims = match check_arch(&m.arch, "architecture") {
        Ok(d) => d,
        Err(p) => return p,
    };
    let mut p = Vec::new();
    let a = &m.arch;
    let d = a.d_model;
    let e = &m.embeddings;
    let tables = [&e.word, &e.position, &e.token_type];
    let rows = [a.vocab_size, a.max_positions, a.type_vocab_size];
    for ((w, name), rows) in tables.into_iter().zip(names::EMBEDDING_TABLES).zip(rows) {
        check_weight(w, name, rows, d, &mut p);
    }
    check_norm(&e.norm, names::EMBEDDINGS_NORM, d, &mut p);
    if m.layers.len() != dims.len() {
        p.push(format!(
            "the model has {} layers but the architecture lists {}",
            m.layers.len(),
            dims.len()
        ));
    }
    for (i, (l, dim)) in m.layers.iter().zip(&dims).enumerate() {
        let shapes = names::layer_linear_shapes(d, dim.attn, dim.d_ff);
        for (lin, (rows, cols)) in l.linears().into_iter().zip(shapes) {
            check_linear(lin, rows, cols, &mut p);
        }
        let [attn_norm, out_norm] = names::LAYER_NORMS.map(|n| names::in_layer(i, n));
        check_norm(&l.attn_norm, &attn_norm, d, &mut p);
        check_norm(&l.out_norm, &out_norm, d, &mut p);
    }
    if let Some(t) = &m.tokenizer
        && t.len() as u64 > MAX_TOKENIZER_BYTES
    {
        p.push(format!(
            "tokenizer.json is {} bytes; the limit is {MAX_TOKENIZER_BYTES}",
            t.len()
        ));
    }
    p
}

fn check_linear(l: &CompressedLinear, rows: usize, cols: usize, p: &mut Vec<String>) {
    let at = if l.name.is_empty() { "(unnamed linear)" } else { &l.name };
    check_weight(&l.weight, at, rows, cols, p);
    if let Some(b) = &l.bias {
        if b.len() != l.weight.rows() {
            p.push(format!(
                "{at}: bias has {} values for {} outputs",
                b.len(),
                l.weight.rows()
            ));
        }
        check_finite(b, &format!("{at}: bias"), p);
    }
    if let Some(act) = &l.act {
        check_act(act, at, p);
    }
}

fn check_act(a: &ActSpec, at: &str, p: &mut Vec<String>) {
    // Codes of 2 to 8 bits fit the integer kernels' int8 lanes (and burn's fake quantization).
    if !(2..=8).contains(&a.bits) {
        p.push(format!(
            "{at}: {} bits of activation quantization; 2 to 8 bits are supported",
            a.bits
        ));
    }
    if let ActRange::Static { min, max } = a.range
        && !(min.is_finite() && max.is_finite() && min <= max)
    {
        p.push(format!(
            "{at}: static activation range [{min}, {max}] must be finite with min <= max"
        ));
    }
}

fn check_norm(n: &LayerNormParams, at: &str, d: usize, p: &mut Vec<String>) {
    for (what, v) in [("gamma", &n.gamma), ("beta", &n.beta)] {
        if v.len() != d {
            p.push(format!("{at}: {what} has {} values but d_model is {d}", v.len()));
        }
        check_finite(v, &format!("{at}: {what}"), p);
    }
    if !(n.eps.is_finite() && n.eps > 0.0) {
        p.push(format!("{at}: eps {} must be finite and positive", n.eps));
    }
}

fn check_finite(v: &[f32], at: &str, p: &mut Vec<String>) {
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        p.push(format!("{at}: value {i} is {} (must be finite)", v[i]));
    }
}

fn check_weight(w: &Weight, at: &str, rows: usize, cols: usize, p: &mut Vec<String>) {
    if (w.rows(), w.cols()) != (rows, cols) {
        p.push(format!(
            "{at}: weight is [{}, {}] but the architecture needs [{rows}, {cols}]",
            w.rows(),
            w.cols()
        ));
        return;
    }
    match w {
        Weight::F32 { values, .. } => {
            if Some(values.len()) != rows.checked_mul(cols) {
                p.push(format!("{at}: {} values for a [{rows}, {cols}] weight", values.len()));
                return;
            }
            check_finite(values, &format!("{at}: weight"), p);
        }
        Weight::Quant(q) => {
            if let Err(e) = q.validate() {
                p.push(format!("{at}: {}", inner(&e)));
                return;
            }
            if let Err(e) = check_quant_values(q) {
                p.push(format!("{at}: {e}"));
            }
        }
    }
}

/// The message of an `Invalid` error without its "invalid compressed model" prefix.
fn inner(e: &crate::RuntimeError) -> String {
    match e {
        crate::RuntimeError::Invalid(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The codes' inclusive range, as `numerics` defines it (asymmetric: unsigned; float: the bit
/// pattern).
fn code_range(scheme: Scheme) -> (i32, i32) {
    match scheme {
        Scheme::Symmetric { bits } if bits <= 4 => (-8, 7),
        Scheme::Symmetric { .. } => (-128, 127),
        Scheme::Asymmetric { bits } => (0, (1 << bits) - 1),
        Scheme::Ternary | Scheme::Binary => (-1, 1),
        Scheme::Float(FloatFormat::E2m1) => (0, 15),
        Scheme::Float(FloatFormat::E3m2) => (0, 63),
        Scheme::Float(_) => (0, 255),
    }
}

/// What `validate` leaves to the artifact: float codes that are NaN/∞ bit patterns (e4m3
/// `S.1111.111`, e5m2 exponent `11111`), and group parameters whose values overflow f32 (checked
/// at the ends of the code range: every value formula is monotone in the code).
fn check_quant_values(q: &QuantTensor) -> Result<(), String> {
    let zero = |g: usize| match &q.zeros {
        Zeros::None => 0.0,
        Zeros::U8(z) => f32::from(z[g]),
        Zeros::F32(z) => z[g],
    };
    if let Scheme::Float(format) = q.scheme {
        let grid = MiniFloat::of(format);
        for r in 0..q.rows {
            for c in 0..q.cols {
                let code = q.code(r, c);
                if !grid.value(code as u8).is_finite() {
                    return Err(format!(
                        "code {code:#04x} at [{r}, {c}] is not a finite {} value",
                        q.format_name()
                    ));
                }
            }
        }
        for (g, &s) in q.scales.iter().enumerate() {
            if !(grid.max() * s).is_finite() {
                return Err(format!("scale {s} of group {g} makes values overflow f32"));
            }
        }
        return Ok(());
    }
    let (lo, hi) = code_range(q.scheme);
    for (g, &s) in q.scales.iter().enumerate() {
        let z = zero(g);
        for code in [lo, hi] {
            if !code_value(q.scheme, q.numerics, None, code, s, z).is_finite() {
                return Err(format!(
                    "scale {s} and zero point {z} of group {g} make values overflow f32"
                ));
            }
        }
    }
    Ok(())
}
