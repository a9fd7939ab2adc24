//! The `.ember` artifact: round trips for every scheme, determinism, atomic writes, a reader that
//! never panics on corrupt input (truncations, bit flips, manifest mutations), the Rust
//! `safetensors` crate opening the file, and the independent Python reader
//! (`scripts/read_ember.py`) agreeing bit for bit with `QuantTensor::dequantize`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;

use ember_numerics::{FloatFormat, Numerics};
use ember_numerics::{GroupLayout, Scheme, quantize};
use ember_runtime::artifact::{self, Manifest};
use ember_runtime::{
    ActRange, ActSpec, Architecture, CompressedLinear, CompressedModel, Embeddings, Layer, LayerArch, LayerNormParams,
    Meta, Pooling, QuantTensor, Weight, Zeros,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

// ---- a small model covering every scheme -----------------------------------------------------

const D: usize = 16;

/// Deterministic weights in about [-2, 2] with varied magnitudes per element.
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| rng.random_range(-1.0f32..1.0) * (1.0 + (i % 7) as f32 * 0.25))
        .collect()
}

fn quant(rows: usize, cols: usize, layout: GroupLayout, scheme: Scheme, numerics: Numerics, seed: u64) -> Weight {
    quant_of(&weights(rows * cols, seed), rows, cols, layout, scheme, numerics)
}

fn quant_of(w: &[f32], rows: usize, cols: usize, layout: GroupLayout, scheme: Scheme, numerics: Numerics) -> Weight {
    Weight::Quant(QuantTensor::from_quantized(&quantize(w, rows, cols, layout, scheme, numerics)).unwrap())
}

fn f32w(rows: usize, cols: usize, seed: u64) -> Weight {
    Weight::F32 {
        rows,
        cols,
        values: weights(rows * cols, seed),
    }
}

fn norm(seed: u64) -> LayerNormParams {
    LayerNormParams {
        gamma: weights(D, seed).iter().map(|v| 1.0 + v * 0.1).collect(),
        beta: weights(D, seed + 1),
        eps: 1e-12,
    }
}

fn linear(name: &str, weight: Weight, bias: bool, act: Option<ActSpec>, seed: u64) -> CompressedLinear {
    let rows = weight.rows();
    CompressedLinear {
        name: name.into(),
        weight,
        bias: bias.then(|| weights(rows, seed)),
        act,
    }
}

const A8: ActSpec = ActSpec {
    bits: 8,
    symmetric: true,
    numerics: Numerics::Ember,
    range: ActRange::Dynamic,
};
const A8_STATIC: ActSpec = ActSpec {
    bits: 8,
    symmetric: false,
    numerics: Numerics::Deepspeed,
    range: ActRange::Static { min: -1.5, max: 2.25 },
};
const A4: ActSpec = ActSpec {
    bits: 4,
    symmetric: false,
    numerics: Numerics::Ember,
    range: ActRange::Static {
        min: -0.123_456_79,
        max: 3.0e-3,
    },
};

use GroupLayout::{Chunks, PerRow, RowGroups};
use Numerics::{Deepspeed, Ember};
use Scheme::{Asymmetric, Binary, Float, Symmetric, Ternary};

/// Three layers (the second and third pruned: fewer heads, narrower FFN) with every scheme,
/// layout and numerics; f32 weights; biases present and absent; every kind of act spec.
fn small_model() -> CompressedModel {
    let arch_layers = vec![
        LayerArch {
            n_heads: 2,
            head_dim: 8,
            d_ff: 32,
        },
        LayerArch {
            n_heads: 1,
            head_dim: 8,
            d_ff: 24,
        },
        LayerArch {
            n_heads: 2,
            head_dim: 4,
            d_ff: 12,
        },
    ];
    let arch = Architecture {
        family: "bert".into(),
        name: "tiny-test".into(),
        vocab_size: 20,
        d_model: D,
        max_positions: 8,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        max_seq_length: 8,
        pooling: Pooling::MeanNormalized,
        layers: arch_layers.clone(),
        kept_layers: vec![0, 2, 5],
    };
    // Word embeddings with an all-zero row (scale 0) and an all-positive row.
    let mut word = weights(20 * D, 1);
    word[..D].fill(0.0);
    word[D..2 * D].iter_mut().for_each(|v| *v = v.abs() + 3.0);
    let embeddings = Embeddings {
        word: quant_of(&word, 20, D, PerRow, Symmetric { bits: 8 }, Ember),
        position: f32w(8, D, 2),
        token_type: quant(2, D, PerRow, Float(FloatFormat::E4m3), Ember, 3),
        norm: norm(4),
    };
    let w = |l: usize| arch_layers[l].n_heads * arch_layers[l].head_dim;
    let ff = |l: usize| arch_layers[l].d_ff;
    let p = |l: usize, m: &str| format!("encoder.layer.{}.{m}", [0, 2, 5][l]);
    let layer0 = Layer {
        query: linear(
            &p(0, "attention.self.query"),
            quant(w(0), D, Chunks(4), Symmetric { bits: 8 }, Deepspeed, 10),
            true,
            Some(A8),
            11,
        ),
        key: linear(
            &p(0, "attention.self.key"),
            quant(w(0), D, RowGroups(8), Symmetric { bits: 6 }, Ember, 12),
            true,
            Some(A8),
            13,
        ),
        value: linear(
            &p(0, "attention.self.value"),
            quant(w(0), D, RowGroups(5), Symmetric { bits: 4 }, Ember, 14),
            true,
            Some(A4),
            15,
        ),
        attn_out: linear(
            &p(0, "attention.output.dense"),
            quant(D, w(0), PerRow, Asymmetric { bits: 8 }, Ember, 16),
            true,
            Some(A8_STATIC),
            17,
        ),
        attn_norm: norm(18),
        ffn_in: linear(
            &p(0, "intermediate.dense"),
            quant(ff(0), D, Chunks(8), Asymmetric { bits: 8 }, Deepspeed, 19),
            true,
            None,
            20,
        ),
        ffn_out: linear(
            &p(0, "output.dense"),
            quant(D, ff(0), RowGroups(16), Asymmetric { bits: 4 }, Ember, 21),
            true,
            Some(A8),
            22,
        ),
        out_norm: norm(23),
    };
    let layer1 = Layer {
        query: linear(
            &p(1, "attention.self.query"),
            quant(w(1), D, PerRow, Ternary, Ember, 30),
            true,
            None,
            31,
        ),
        key: linear(
            &p(1, "attention.self.key"),
            quant(w(1), D, PerRow, Binary, Ember, 32),
            true,
            None,
            33,
        ),
        value: linear(
            &p(1, "attention.self.value"),
            quant(w(1), D, RowGroups(4), Float(FloatFormat::E5m2), Ember, 34),
            true,
            None,
            35,
        ),
        attn_out: linear(
            &p(1, "attention.output.dense"),
            quant(D, w(1), PerRow, Float(FloatFormat::E3m2), Ember, 36),
            false,
            None,
            37,
        ),
        attn_norm: norm(38),
        ffn_in: linear(
            &p(1, "intermediate.dense"),
            quant(ff(1), D, RowGroups(8), Float(FloatFormat::E2m1), Ember, 39),
            true,
            None,
            40,
        ),
        ffn_out: linear(&p(1, "output.dense"), f32w(D, ff(1), 41), false, None, 42),
        out_norm: norm(43),
    };
    // DeepSpeed binary of weights with zeros (sign(0) = 0) is stored as ternary; Ember
    // asymmetric of all-positive weights has zero points outside 0..=255 (stored as F32).
    let mut with_zeros = weights(w(2) * D, 50);
    with_zeros.iter_mut().step_by(3).for_each(|v| *v = 0.0);
    let positive: Vec<f32> = weights(w(2) * D, 52).iter().map(|v| v + 10.0).collect();
    let layer2 = Layer {
        query: linear(
            &p(2, "attention.self.query"),
            quant(w(2), D, RowGroups(16), Symmetric { bits: 3 }, Ember, 51),
            true,
            None,
            53,
        ),
        key: linear(
            &p(2, "attention.self.key"),
            quant_of(&positive, w(2), D, RowGroups(8), Asymmetric { bits: 4 }, Ember),
            true,
            None,
            54,
        ),
        value: linear(
            &p(2, "attention.self.value"),
            quant_of(&with_zeros, w(2), D, PerRow, Binary, Deepspeed),
            true,
            None,
            55,
        ),
        attn_out: linear(
            &p(2, "attention.output.dense"),
            quant(D, w(2), Chunks(2), Asymmetric { bits: 4 }, Deepspeed, 56),
            true,
            None,
            57,
        ),
        attn_norm: norm(58),
        ffn_in: linear(&p(2, "intermediate.dense"), f32w(ff(2), D, 59), true, Some(A8), 60),
        ffn_out: linear(
            &p(2, "output.dense"),
            quant(D, ff(2), PerRow, Symmetric { bits: 4 }, Deepspeed, 61),
            true,
            None,
            62,
        ),
        out_norm: norm(63),
    };
    let mut figures = Map::new();
    figures.insert("cos_mean".into(), json!(0.987_654_321_012_345_6));
    figures.insert("size_bytes".into(), json!(12345));
    figures.insert("tiny".into(), json!(1.234_567_890_123_456_7e-300));
    CompressedModel {
        arch,
        embeddings,
        layers: vec![layer0, layer1, layer2],
        tokenizer: Some(
            r#"{"version":"1.0","model":{"type":"WordPiece","vocab":{"[PAD]":0,"[UNK]":1,"héllo":2,"wörld":3,"日本":4}}}"#
                .into(),
        ),
        meta: Meta {
            ember_version: "0.1.0".into(),
            config: json!({"compression_training": {"weight_quantization": {"shared_parameters": {"enabled": true}}},
                           "ember": {"numerics": "deepspeed", "ratio": 0.1}}),
            figures,
        },
    }
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-artifact-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Reads from memory; a panic fails the test with the input's description.
fn read_no_panic(bytes: &[u8], what: &str) -> Result<CompressedModel, String> {
    match catch_unwind(AssertUnwindSafe(|| {
        artifact::from_bytes(bytes, Path::new("fuzz.ember"))
    })) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => panic!("reading panicked on {what}"),
    }
}

// ---- round trip ----------------------------------------------------------------------------------

#[test]
fn the_model_covers_every_scheme() {
    let m = small_model();
    let mut formats: Vec<String> = [&m.embeddings.word, &m.embeddings.position, &m.embeddings.token_type]
        .into_iter()
        .chain(m.layers.iter().flat_map(|l| l.linears().map(|lin| &lin.weight)))
        .map(Weight::format_name)
        .collect();
    formats.sort();
    formats.dedup();
    let want = [
        "binary", "f32", "fp4-e2m1", "fp6-e3m2", "fp8-e4m3", "fp8-e5m2", "int3", "int4", "int6", "int8", "ternary",
        "uint4", "uint8",
    ];
    assert_eq!(formats, want);
    let zeros: Vec<&Zeros> = m
        .layers
        .iter()
        .flat_map(|l| l.linears().map(|lin| &lin.weight))
        .filter_map(|w| match w {
            Weight::Quant(q) => Some(&q.zeros),
            Weight::F32 { .. } => None,
        })
        .collect();
    assert!(zeros.iter().any(|z| matches!(z, Zeros::U8(_))));
    assert!(zeros.iter().any(|z| matches!(z, Zeros::F32(_))));
}

#[test]
fn write_then_read_gives_the_same_model_and_the_same_bytes() {
    let m = small_model();
    let dir = tmp_dir("roundtrip");
    let path = dir.join("model.ember");
    let report = artifact::write(&m, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(report.bytes, bytes.len() as u64);
    let back = artifact::read(&path).unwrap();
    assert_eq!(back, m);
    assert_eq!(artifact::from_bytes(&bytes, &path).unwrap(), m);
    // Deterministic: the same model gives the same bytes, and so does the model read back.
    assert_eq!(artifact::to_bytes(&m).unwrap(), bytes);
    assert_eq!(artifact::to_bytes(&back).unwrap(), bytes);
    // Nothing but the artifact is left in the directory (no temp files).
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("model.ember")]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_model_without_tokenizer_or_config_round_trips() {
    let mut m = small_model();
    m.tokenizer = None;
    m.meta = Meta::default();
    let bytes = artifact::to_bytes(&m).unwrap();
    assert_eq!(artifact::from_bytes(&bytes, Path::new("x.ember")).unwrap(), m);
}

#[test]
fn the_file_is_a_safetensors_file_with_the_documented_tensors() {
    use safetensors::tensor::{Dtype, SafeTensors};
    let m = small_model();
    let bytes = artifact::to_bytes(&m).unwrap();
    let st = SafeTensors::deserialize(&bytes).expect("the safetensors crate opens the file");
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let manifest: Value = serde_json::from_str(&meta.metadata().as_ref().unwrap()["ember"]).unwrap();
    assert_eq!(manifest["format_version"], 1);
    let t = |name: &str| st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    // int8 codes: I8 [rows, cols]; int4: U8 [rows, cols/2]; ternary: U8 [rows, cols/4]; binary:
    // U8 [rows, cols/8]; fp6: U8 [rows, cols] (one code per byte).
    let q0 = t("encoder.layer.0.attention.self.query.weight.codes");
    assert_eq!((q0.dtype(), q0.shape()), (Dtype::I8, &[16usize, 16][..]));
    let k0 = t("encoder.layer.0.attention.self.key.weight.codes"); // int6
    assert_eq!((k0.dtype(), k0.shape()), (Dtype::I8, &[16usize, 16][..]));
    let v0 = t("encoder.layer.0.attention.self.value.weight.codes"); // int4
    assert_eq!((v0.dtype(), v0.shape()), (Dtype::U8, &[16usize, 8][..]));
    assert_eq!(t("encoder.layer.1.attention.self.query.weight.codes").shape(), &[8, 4]);
    assert_eq!(t("encoder.layer.1.attention.self.key.weight.codes").shape(), &[8, 2]);
    assert_eq!(
        t("encoder.layer.1.attention.output.dense.weight.codes").shape(),
        &[16, 8]
    );
    // RowGroups(5) over 16 columns: 4 groups per row (5, 5, 5, 1) × 16 rows.
    assert_eq!(t("encoder.layer.0.attention.self.value.weight.scales").shape(), &[64]);
    let z = t("encoder.layer.0.attention.output.dense.weight.zeros");
    assert_eq!((z.dtype(), z.shape()), (Dtype::U8, &[16usize][..]));
    let z = t("encoder.layer.0.intermediate.dense.weight.zeros"); // DeepSpeed: F32 offsets
    assert_eq!((z.dtype(), z.shape()), (Dtype::F32, &[8usize][..]));
    assert_eq!(t("embeddings.position_embeddings.weight").dtype(), Dtype::F32);
    assert_eq!(t("embeddings.LayerNorm.weight").shape(), &[16]);
    assert_eq!(t("encoder.layer.2.output.LayerNorm.bias").shape(), &[16]);
    assert!(st.tensor("encoder.layer.1.attention.output.dense.bias").is_err());
    let tok = t("tokenizer.json.zlib");
    let text = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::ZlibDecoder::new(tok.data())
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    assert_eq!(Some(text), m.tokenizer);
}

#[test]
fn read_manifest_describes_the_file() {
    let m = small_model();
    let dir = tmp_dir("manifest");
    let path = dir.join("model.ember");
    let report = artifact::write(&m, &path).unwrap();
    let manifest: Manifest = artifact::read_manifest(&path).unwrap();
    assert_eq!(manifest.architecture, m.arch);
    assert_eq!(manifest.layers.len(), 3);
    assert_eq!(manifest.layers[0].query.name, "encoder.layer.0.attention.self.query");
    assert_eq!(manifest.layers[2].query.name, "encoder.layer.5.attention.self.query");
    assert_eq!(manifest.layers[0].value.act, Some(A4));
    // total_bytes is every tensor's data; the file adds the 8-byte length and the header.
    let header_len = u64::from_le_bytes(std::fs::read(&path).unwrap()[..8].try_into().unwrap());
    assert_eq!(manifest.total_bytes() + 8 + header_len, report.bytes);
    // Weight bytes are the model's own storage figures.
    assert_eq!(
        manifest.embeddings.word.storage_bytes,
        m.embeddings.word.storage_bytes() as u64
    );
    // word: 20×16 int8 codes + 20 f32 scales.
    assert_eq!(manifest.embeddings.word.storage_bytes, 320 + 80);
    // Serializing the manifest gives the JSON stored in the file (`ember inspect --json`).
    let (header, _) = split(&std::fs::read(&path).unwrap());
    let stored: Value = serde_json::from_str(header["__metadata__"]["ember"].as_str().unwrap()).unwrap();
    assert_eq!(serde_json::to_value(&manifest).unwrap(), stored);
    let table = manifest.table();
    for needle in [
        "embeddings.word_embeddings",
        "encoder.layer.5.output.dense",
        "fp8-e5m2",
        "uint4",
        "a4 asym static",
        "a8 sym per-token",
        "tokenizer.json (zlib",
        "total:",
        "smaller than f32",
    ] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
    println!("{table}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- atomic writes -------------------------------------------------------------------------------

#[test]
fn an_invalid_model_is_refused_before_the_file_is_touched() {
    let dir = tmp_dir("invalid");
    let path = dir.join("model.ember");
    std::fs::write(&path, b"previous contents").unwrap();
    let mut m = small_model();
    m.layers[1].query.bias.as_mut().unwrap()[3] = f32::NAN;
    m.arch.layers[0].d_ff = 31;
    let err = artifact::write(&m, &path).unwrap_err().to_string();
    assert!(err.contains("invalid compressed model"), "{err}");
    assert!(
        err.contains("encoder.layer.2.attention.self.query: bias: value 3 is NaN"),
        "{err}"
    );
    assert!(
        err.contains("encoder.layer.0.intermediate.dense: weight is [32, 16] but the architecture needs [31, 16]"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"previous contents");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_write_leaves_the_existing_file_intact() {
    let m = small_model();
    let dir = tmp_dir("failed-write");
    // Renaming over a non-empty directory fails after the temp file is written.
    let target = dir.join("model.ember");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"kept").unwrap();
    let err = artifact::write(&m, &target).unwrap_err().to_string();
    assert!(err.contains("model.ember"), "{err}");
    assert_eq!(std::fs::read(target.join("keep")).unwrap(), b"kept");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "temp file removed");
    // A missing directory: an I/O error naming the path.
    let err = artifact::write(&m, &dir.join("missing/model.ember"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing/model.ember"), "{err}");
    // A read-only directory (when permissions apply: not for root).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.join("ro");
        std::fs::create_dir(&ro).unwrap();
        let path = ro.join("model.ember");
        std::fs::write(&path, b"previous").unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(ro.join("probe"), b"").is_err() {
            let err = artifact::write(&m, &path).unwrap_err().to_string();
            assert!(err.contains("model.ember"), "{err}");
            assert_eq!(std::fs::read(&path).unwrap(), b"previous");
            assert_eq!(std::fs::read_dir(&ro).unwrap().count(), 1);
        } else {
            eprintln!("running with permission override (root): read-only directory case skipped");
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // And a successful write replaces an existing file.
    let path = dir.join("ok.ember");
    std::fs::write(&path, b"old").unwrap();
    artifact::write(&m, &path).unwrap();
    assert_eq!(artifact::read(&path).unwrap(), m);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- corrupt files: never a panic, always a message ------------------------------------------

/// The safetensors header as JSON and the data after it.
fn split(bytes: &[u8]) -> (Map<String, Value>, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn assemble(header: &Map<String, Value>, data: &[u8]) -> Vec<u8> {
    let mut h = serde_json::to_vec(header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

/// The file with its manifest changed by `f`.
fn with_manifest(bytes: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let (mut header, data) = split(bytes);
    let meta = header["__metadata__"].as_object_mut().unwrap();
    let mut manifest: Value = serde_json::from_str(meta["ember"].as_str().unwrap()).unwrap();
    f(&mut manifest);
    meta["ember"] = Value::String(serde_json::to_string(&manifest).unwrap());
    assemble(&header, &data)
}

/// The file with its safetensors header changed by `f`.
fn with_header(bytes: &[u8], f: impl FnOnce(&mut Map<String, Value>, &mut Vec<u8>)) -> Vec<u8> {
    let (mut header, mut data) = split(bytes);
    f(&mut header, &mut data);
    assemble(&header, &data)
}

fn expect_err(bytes: &[u8], what: &str, needles: &[&str]) {
    match read_no_panic(bytes, what) {
        Ok(_) => panic!("{what}: read succeeded"),
        Err(e) => {
            assert!(
                e.starts_with("fuzz.ember: not a valid .ember artifact: "),
                "{what}: {e}"
            );
            for n in needles {
                assert!(e.contains(n), "{what}: message lacks `{n}`:\n{e}");
            }
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = artifact::to_bytes(&small_model()).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for len in 0..bytes.len() {
        let needle = if len < 8 {
            "too short for a safetensors header"
        } else if len < 8 + n {
            "the file is truncated"
        } else {
            "(the file is truncated)"
        };
        expect_err(&bytes[..len], &format!("truncated to {len} bytes"), &[needle]);
    }
    expect_err(
        &[bytes.as_slice(), &[0u8; 3]].concat(),
        "3 extra bytes",
        &["no tensor accounts for"],
    );
}

#[test]
fn random_bit_flips_and_overwrites_never_panic() {
    let m = small_model();
    let bytes = artifact::to_bytes(&m).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut rng = StdRng::seed_from_u64(0xE3BE);
    let (mut ok, mut err) = (0, 0);
    for case in 0..1200 {
        let mut b = bytes.clone();
        // A third in the length prefix + header, the rest in the data.
        let pos = match case % 3 {
            0 => rng.random_range(0..8 + n),
            _ => rng.random_range(8 + n..b.len()),
        };
        let what = if case % 2 == 0 {
            let bit = rng.random_range(0..8);
            b[pos] ^= 1 << bit;
            format!("bit {bit} of byte {pos} flipped")
        } else {
            let v = rng.random::<u8>();
            b[pos] = v;
            format!("byte {pos} set to {v:#04x}")
        };
        match read_no_panic(&b, &what) {
            // A flip that leaves a valid model (a code or a weight changed) must give a model
            // that writes again.
            Ok(model) => {
                ok += 1;
                artifact::to_bytes(&model).unwrap_or_else(|e| panic!("{what}: read back but does not write: {e}"));
            }
            Err(e) => {
                err += 1;
                assert!(e.contains("not a valid .ember artifact"), "{what}: {e}");
            }
        }
    }
    assert!(err > 200 && ok > 100, "ok {ok}, err {err}");
}

/// Every JSON pointer in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

#[test]
fn random_manifest_mutations_never_panic() {
    let bytes = artifact::to_bytes(&small_model()).unwrap();
    let (header, _) = split(&bytes);
    let manifest: Value = serde_json::from_str(header["__metadata__"]["ember"].as_str().unwrap()).unwrap();
    let mut all = Vec::new();
    pointers(&manifest, String::new(), &mut all);
    let mut rng = StdRng::seed_from_u64(7);
    let replacements = [
        json!(null),
        json!("x"),
        json!(-1),
        json!(1e30),
        json!(3.5),
        json!([]),
        json!({}),
        json!(true),
        json!([1, 2]),
        json!(u64::MAX),
    ];
    for case in 0..600 {
        let ptr = all[rng.random_range(0..all.len())].clone();
        let free = ptr.starts_with("/config") || ptr.starts_with("/figures");
        let (parent, key) = ptr.rsplit_once('/').unwrap();
        if case % 3 == 0 {
            // Remove a key (or an array element).
            let b = with_manifest(&bytes, |m| match m.pointer_mut(parent).unwrap() {
                Value::Object(o) => {
                    o.remove(key);
                }
                Value::Array(a) => {
                    a.remove(key.parse::<usize>().unwrap());
                }
                _ => unreachable!(),
            });
            let r = read_no_panic(&b, &format!("{ptr} removed"));
            if !free {
                assert!(r.is_err(), "{ptr} removed: read succeeded");
            }
        } else {
            let v = replacements[rng.random_range(0..replacements.len())].clone();
            let what = format!("{ptr} set to {v}");
            let b = with_manifest(&bytes, |m| *m.pointer_mut(&ptr).unwrap() = v);
            let _ = read_no_panic(&b, &what);
        }
    }
}

/// A change to the manifest JSON.
type ManifestEdit = Box<dyn Fn(&mut Value)>;
/// A change to the safetensors header and data.
type HeaderEdit = Box<dyn Fn(&mut Map<String, Value>, &mut Vec<u8>)>;

#[test]
fn manifest_problems_are_named() {
    let m = small_model();
    let bytes = artifact::to_bytes(&m).unwrap();
    let cases: Vec<(&str, ManifestEdit, Vec<&str>)> = vec![
        (
            "newer format",
            Box::new(|m| m["format_version"] = json!(2)),
            vec!["manifest.format_version: 2 is not supported"],
        ),
        (
            "missing scales",
            Box::new(|m| {
                m["layers"][0]["query"]["weight"]
                    .as_object_mut()
                    .unwrap()
                    .remove("scales");
            }),
            vec!["manifest.layers[0].query.weight.scales: missing"],
        ),
        (
            "wrong codes shape",
            Box::new(|m| m["layers"][0]["value"]["weight"]["codes"]["shape"] = json!([16, 16])),
            vec![
                "manifest.layers[0].value.weight.codes: declared U8 [16, 16], but a [16, 16] int4 weight's codes is U8 [16, 8]",
            ],
        ),
        (
            "architecture disagrees with the tensors",
            Box::new(|m| m["architecture"]["layers"][1]["d_ff"] = json!(25)),
            vec![
                "manifest.layers[1].ffn_in.weight.shape: [24, 16] but the architecture needs [25, 16]",
                "manifest.layers[1].ffn_out.weight.shape: [16, 24] but the architecture needs [16, 25]",
            ],
        ),
        (
            "d_model disagrees",
            Box::new(|m| m["architecture"]["d_model"] = json!(17)),
            vec!["manifest.embeddings.word.shape: [20, 16] but the architecture needs [20, 17]"],
        ),
        (
            "huge dimension",
            Box::new(|m| {
                m["architecture"]["vocab_size"] = json!(1u64 << 40);
                m["embeddings"]["word"]["shape"] = json!([1u64 << 40, 16]);
            }),
            vec!["manifest.architecture.vocab_size: 1099511627776 is over the limit of 16777216"],
        ),
        (
            "wrong type",
            Box::new(|m| m["architecture"]["vocab_size"] = json!("20")),
            vec!["manifest.architecture: invalid type: string \"20\", expected usize"],
        ),
        (
            "unknown key",
            Box::new(|m| m["layers"][2]["key"]["weight"]["colour"] = json!("red")),
            vec!["manifest.layers[2].key.weight.colour: unknown key"],
        ),
        (
            "format disagrees with scheme",
            Box::new(|m| m["embeddings"]["word"]["format"] = json!("int4")),
            vec!["manifest.embeddings.word.format: `int4` does not match the scheme, which is int8"],
        ),
        (
            "unknown scheme",
            Box::new(|m| m["layers"][1]["query"]["weight"]["scheme"] = json!("quaternary")),
            vec!["manifest.layers[1].query.weight.scheme: `quaternary` is not one of"],
        ),
        (
            "bits out of range",
            Box::new(|m| m["layers"][0]["key"]["weight"]["bits"] = json!(9)),
            vec!["manifest.layers[0].key.weight.bits: 9; integer schemes take 3 to 8 bits"],
        ),
        (
            "bad layout",
            Box::new(|m| m["layers"][0]["query"]["weight"]["layout"] = json!({"kind": "chunks", "count": 5})),
            vec!["manifest.layers[0].query.weight.layout: Chunks(5) does not divide a [16, 16] weight"],
        ),
        (
            "act spec incomplete",
            Box::new(|m| m["layers"][0]["query"]["act"] = json!({"bits": 8})),
            vec!["manifest.layers[0].query.act: missing field"],
        ),
        (
            "act bits unsupported",
            Box::new(|m| m["layers"][0]["query"]["act"]["bits"] = json!(9)),
            vec!["encoder.layer.0.attention.self.query: 9 bits of activation quantization; 2 to 8 bits are supported"],
        ),
        (
            "two modules share a tensor",
            Box::new(|m| m["layers"][0]["key"]["bias"] = m["layers"][0]["query"]["bias"].clone()),
            vec![
                "manifest.layers[0].key.bias: tensor `encoder.layer.0.attention.self.query.bias` is already used by manifest.layers[0].query.bias",
                "tensor `encoder.layer.0.attention.self.key.bias` is in the file but not in the manifest",
            ],
        ),
        (
            "missing tensor",
            Box::new(|m| m["embeddings"]["norm"]["gamma"]["name"] = json!("nope")),
            vec!["manifest.embeddings.norm.gamma: tensor `nope` is not in the file"],
        ),
        (
            "storage bytes",
            Box::new(|m| m["embeddings"]["word"]["storage_bytes"] = json!(1)),
            vec!["manifest.embeddings.word.storage_bytes: 1 but its tensors hold 400 bytes"],
        ),
        (
            "tokenizer longer than declared",
            Box::new(|m| m["tokenizer"]["uncompressed_bytes"] = json!(10)),
            vec!["tokenizer: the zlib stream inflates past its declared 10 bytes"],
        ),
        (
            "tokenizer shorter than declared",
            Box::new(|m| {
                let n = m["tokenizer"]["uncompressed_bytes"].as_u64().unwrap();
                m["tokenizer"]["uncompressed_bytes"] = json!(n + 1);
            }),
            vec!["tokenizer: inflates to"],
        ),
        (
            "tokenizer over the limit",
            Box::new(|m| m["tokenizer"]["uncompressed_bytes"] = json!(1u64 << 40)),
            vec!["manifest.tokenizer.uncompressed_bytes: 1099511627776 is over the"],
        ),
        (
            "not an object",
            Box::new(|m| *m = json!([1, 2, 3])),
            vec!["manifest: expected an object, found an array"],
        ),
    ];
    for (what, f, needles) in &cases {
        expect_err(&with_manifest(&bytes, f), what, needles);
    }
    // Several problems are reported together.
    let b = with_manifest(&bytes, |m| {
        m["architecture"]["vocab_size"] = json!(21);
        m["layers"][0]["query"]["weight"]["scheme"] = json!("nope");
        m["layers"][1]["key"]["name"] = json!(3);
    });
    expect_err(
        &b,
        "parse problems together",
        &[
            "2 problems:",
            "manifest.layers[0].query.weight.scheme: `nope`",
            "manifest.layers[1].key.name: invalid type: integer `3`, expected a string",
        ],
    );
}

#[test]
fn header_problems_are_named() {
    let m = small_model();
    let bytes = artifact::to_bytes(&m).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // Length prefix.
    let mut b = bytes.clone();
    b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    expect_err(&b, "huge header length", &["over the 100000000-byte limit"]);
    let mut b = bytes.clone();
    b[..8].copy_from_slice(&((bytes.len() as u64) - 7).to_le_bytes());
    expect_err(&b, "header past the end", &["the file is truncated"]);
    let mut b = bytes.clone();
    b[8] = b'[';
    expect_err(&b, "not an object", &["the header is not a safetensors JSON object"]);
    let mut b = bytes.clone();
    b[8 + n / 2] = 0xff;
    expect_err(&b, "not UTF-8", &["the header is not UTF-8 text"]);
    // Tensor index.
    let codes = "encoder.layer.1.attention.self.value.weight.codes";
    let cases: Vec<(&str, HeaderEdit, Vec<&str>)> = vec![
        (
            "dtype F16",
            Box::new(|h, _| h[codes]["dtype"] = json!("F16")),
            vec![&"dtype `F16` is not used by .ember files"],
        ),
        (
            "dtype I8 instead of U8",
            Box::new(|h, _| h[codes]["dtype"] = json!("I8")),
            vec![
                &"tensor `encoder.layer.1.attention.self.value.weight.codes` is I8 [8, 16] in the file but the manifest declares U8 [8, 16]",
            ],
        ),
        (
            "shape disagrees with offsets",
            Box::new(|h, _| h[codes]["shape"] = json!([8, 17])),
            vec![&"a U8 tensor of shape [8, 17] is 136 bytes but its data_offsets span 128"],
        ),
        (
            "overlapping offsets",
            Box::new(|h, _| {
                let o = h[codes]["data_offsets"].as_array().unwrap().clone();
                let (b, e) = (o[0].as_u64().unwrap(), o[1].as_u64().unwrap());
                h[codes]["data_offsets"] = json!([b - 1, e - 1]);
            }),
            vec![&"(overlapping or gapped tensors)"],
        ),
        (
            "stray tensor",
            Box::new(|h, d| {
                h.insert(
                    "stray".into(),
                    json!({"dtype": "U8", "shape": [4], "data_offsets": [d.len(), d.len() + 4]}),
                );
                d.extend([1, 2, 3, 4]);
            }),
            vec![&"tensor `stray` is in the file but not in the manifest"],
        ),
        (
            "no manifest",
            Box::new(|h, _| {
                h.remove("__metadata__");
            }),
            vec![&"no Ember manifest: `__metadata__.ember` is missing"],
        ),
        (
            "metadata not strings",
            Box::new(|h, _| h["__metadata__"]["other"] = json!(1)),
            vec![&"__metadata__.other: safetensors metadata values are strings"],
        ),
        (
            "bad offsets",
            Box::new(|h, _| h[codes]["data_offsets"] = json!([5])),
            vec![&"data_offsets must be [begin, end]"],
        ),
    ];
    for (what, f, needles) in &cases {
        expect_err(&with_header(&bytes, f), what, needles);
    }
}

/// The data bytes of tensor `name`.
fn data_range(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    let (header, _) = split(bytes);
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let o = header[name]["data_offsets"].as_array().unwrap();
    8 + n + o[0].as_u64().unwrap() as usize..8 + n + o[1].as_u64().unwrap() as usize
}

#[test]
fn value_problems_are_named() {
    let m = small_model();
    let bytes = artifact::to_bytes(&m).unwrap();
    // A NaN bias.
    let mut b = bytes.clone();
    let r = data_range(&bytes, "encoder.layer.0.attention.self.key.bias");
    b[r.start..r.start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    expect_err(
        &b,
        "NaN bias",
        &["encoder.layer.0.attention.self.key: bias: value 0 is NaN"],
    );
    // An infinite scale.
    let mut b = bytes.clone();
    let r = data_range(&bytes, "embeddings.word_embeddings.weight.scales");
    b[r.start + 8..r.start + 12].copy_from_slice(&f32::INFINITY.to_le_bytes());
    expect_err(
        &b,
        "inf scale",
        &["embeddings.word_embeddings: the scale of group 2 is inf, not a finite number"],
    );
    // A scale that makes values overflow.
    let mut b = bytes.clone();
    b[r.start + 8..r.start + 12].copy_from_slice(&f32::MAX.to_le_bytes());
    expect_err(
        &b,
        "huge scale",
        &[
            "embeddings.word_embeddings: scale",
            "of group 2 make values overflow f32",
        ],
    );
    // The e4m3 NaN pattern.
    let mut b = bytes.clone();
    let r = data_range(&bytes, "embeddings.token_type_embeddings.weight.codes");
    b[r.start + 5] = 0x7f;
    expect_err(
        &b,
        "e4m3 NaN",
        &["embeddings.token_type_embeddings: code 0x7f at [0, 5] is not a finite fp8-e4m3 value"],
    );
    // A ternary code 3 (stored 2-bit pattern 11 = code +2).
    let mut b = bytes.clone();
    let r = data_range(&bytes, "encoder.layer.1.attention.self.query.weight.codes");
    b[r.start] = 0xff;
    expect_err(
        &b,
        "ternary 3",
        &["encoder.layer.2.attention.self.query: stored code 2 at [0, 0] is outside [-1, 1]"],
    );
    // Tokenizer: a corrupt stream, a wrong checksum, trailing bytes.
    let r = data_range(&bytes, "tokenizer.json.zlib");
    let mut b = bytes.clone();
    b[r.start + 5] ^= 0x55;
    expect_err(&b, "corrupt tokenizer", &["tokenizer: "]);
    let mut b = bytes.clone();
    b[r.end - 1] ^= 0x01;
    expect_err(&b, "tokenizer checksum", &["tokenizer: the zlib stream is corrupt"]);
}

#[test]
fn a_zip_bomb_tokenizer_is_refused_without_inflating_it() {
    // 64 MiB of spaces deflate to ~64 KB; declared as 100 bytes.
    let mut m = small_model();
    m.tokenizer = Some(" ".repeat(100));
    let bytes = artifact::to_bytes(&m).unwrap();
    let bomb = {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![b' '; 64 << 20]).unwrap();
        z.finish().unwrap()
    };
    let b = with_header(&bytes, |h, d| {
        let o = h["tokenizer.json.zlib"]["data_offsets"].as_array().unwrap();
        let (s, e) = (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize);
        assert_eq!(e, d.len(), "the tokenizer is the last tensor");
        d.truncate(s);
        d.extend(&bomb);
        h["tokenizer.json.zlib"] = json!({"dtype": "U8", "shape": [bomb.len()], "data_offsets": [s, s + bomb.len()]});
    });
    let b = with_manifest(&b, |m| m["tokenizer"]["tensor"]["shape"] = json!([bomb.len()]));
    let start = std::time::Instant::now();
    expect_err(
        &b,
        "zip bomb",
        &["tokenizer: the zlib stream inflates past its declared 100 bytes"],
    );
    assert!(start.elapsed().as_secs_f64() < 5.0);
}

// ---- size of a W8A8 MiniLM -----------------------------------------------------------------------

/// A MiniLM-L6-shaped model with int8 per-row weights everywhere (codes all zero: only the size
/// matters here).
fn minilm_int8() -> CompressedModel {
    let int8 = |rows: usize, cols: usize| {
        Weight::Quant(QuantTensor {
            rows,
            cols,
            scheme: Symmetric { bits: 8 },
            numerics: Ember,
            layout: PerRow,
            codes: vec![0; rows * cols],
            scales: vec![0.01; rows],
            zeros: Zeros::None,
        })
    };
    let d = 384;
    let norm = || LayerNormParams {
        gamma: vec![1.0; d],
        beta: vec![0.0; d],
        eps: 1e-12,
    };
    let lin = |rows, cols| CompressedLinear {
        name: "m".into(),
        weight: int8(rows, cols),
        bias: Some(vec![0.0; rows]),
        act: Some(A8),
    };
    let layer = || Layer {
        query: lin(d, d),
        key: lin(d, d),
        value: lin(d, d),
        attn_out: lin(d, d),
        attn_norm: norm(),
        ffn_in: lin(1536, d),
        ffn_out: lin(d, 1536),
        out_norm: norm(),
    };
    // A WordPiece-like vocabulary of 30522 entries (the real tokenizer.json is 466 KB).
    let mut rng = StdRng::seed_from_u64(3);
    let vocab: Vec<String> = (0..30522)
        .map(|i| {
            let len = rng.random_range(2..9);
            let w: String = (0..len).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
            format!("\"{}{w}\":{i}", if i % 3 == 0 { "##" } else { "" })
        })
        .collect();
    let tokenizer = format!(
        "{{\"model\":{{\"type\":\"WordPiece\",\"vocab\":{{{}}}}}}}",
        vocab.join(",")
    );
    CompressedModel {
        arch: Architecture {
            family: "bert".into(),
            name: "minilm-l6".into(),
            vocab_size: 30522,
            d_model: d,
            max_positions: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            max_seq_length: 256,
            pooling: Pooling::MeanNormalized,
            layers: vec![
                LayerArch {
                    n_heads: 12,
                    head_dim: 32,
                    d_ff: 1536
                };
                6
            ],
            kept_layers: (0..6).collect(),
        },
        embeddings: Embeddings {
            word: int8(30522, d),
            position: int8(512, d),
            token_type: int8(2, d),
            norm: norm(),
        },
        layers: (0..6).map(|_| layer()).collect(),
        tokenizer: Some(tokenizer),
        meta: Meta::default(),
    }
}

#[test]
fn a_w8a8_minilm_fits_the_size_budget() {
    let m = minilm_int8();
    let bytes = artifact::to_bytes(&m).unwrap();
    // Weights: (30522 + 512 + 2)·384 int8 + 6·(4·384² + 2·384·1536) int8 codes, one byte each,
    // plus one f32 scale per row, f32 biases and LayerNorms (~0.3 MB), the compressed tokenizer
    // and the header.
    let weights: u64 = (30522 + 512 + 2) * 384 + 6 * (4 * 384 * 384 + 2 * 384 * 1536);
    let (header, _) = split(&bytes);
    let tensor_bytes = |dtype: &str| -> u64 {
        header
            .values()
            .filter(|t| t["dtype"] == dtype)
            .map(|t| {
                let o = t["data_offsets"].as_array().unwrap();
                o[1].as_u64().unwrap() - o[0].as_u64().unwrap()
            })
            .sum()
    };
    assert_eq!(tensor_bytes("I8"), weights, "int8 codes in the file");
    let rows: u64 = 30522 + 512 + 2 + 6 * (4 * 384 + 1536 + 384);
    let vectors: u64 = 6 * (4 * 384 + 1536 + 384 + 4 * 384) + 2 * 384;
    assert_eq!(
        tensor_bytes("F32"),
        4 * (rows + vectors),
        "scales, biases and LayerNorms"
    );
    assert!(bytes.len() <= 23_500_000, "{} bytes", bytes.len());
    let tokenizer = m.tokenizer.as_ref().unwrap().len();
    let manifest_tokenizer = {
        let (header, _) = split(&bytes);
        let o = header["tokenizer.json.zlib"]["data_offsets"].as_array().unwrap();
        o[1].as_u64().unwrap() - o[0].as_u64().unwrap()
    };
    assert!(
        manifest_tokenizer * 2 < tokenizer as u64,
        "{manifest_tokenizer} of {tokenizer}"
    );
    println!(
        "{} bytes; tokenizer {tokenizer} → {manifest_tokenizer} bytes",
        bytes.len()
    );
    assert_eq!(artifact::from_bytes(&bytes, Path::new("minilm.ember")).unwrap(), m);
}

// ---- the independent Python reader ---------------------------------------------------------------

#[test]
fn the_python_reference_reader_dequantizes_every_value_bit_for_bit() {
    let m = small_model();
    let dir = tmp_dir("python");
    let path = dir.join("model.ember");
    artifact::write(&m, &path).unwrap();
    let dump = dir.join("dump.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/read_ember.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&path)
        .arg("--dump")
        .arg(&dump)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "this test runs `python3 {}` (standard library only) and needs python3 on PATH: {e}",
                script.display()
            )
        });
    assert!(
        out.status.success(),
        "read_ember.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&std::fs::read(&dump).unwrap()).unwrap();
    let bits = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let f32_bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let mut weights: Vec<(String, &Weight)> = vec![
        ("embeddings.word".into(), &m.embeddings.word),
        ("embeddings.position".into(), &m.embeddings.position),
        ("embeddings.token_type".into(), &m.embeddings.token_type),
    ];
    let mut vectors: Vec<(String, &[f32])> = vec![
        ("embeddings.norm.gamma".into(), &m.embeddings.norm.gamma),
        ("embeddings.norm.beta".into(), &m.embeddings.norm.beta),
    ];
    let keys = ["query", "key", "value", "attn_out", "ffn_in", "ffn_out"];
    for (i, l) in m.layers.iter().enumerate() {
        for (k, lin) in keys.iter().zip(l.linears()) {
            weights.push((format!("layers[{i}].{k}"), &lin.weight));
            if let Some(b) = &lin.bias {
                vectors.push((format!("layers[{i}].{k}.bias"), b));
            }
        }
        for (k, n) in [("attn_norm", &l.attn_norm), ("out_norm", &l.out_norm)] {
            vectors.push((format!("layers[{i}].{k}.gamma"), &n.gamma));
            vectors.push((format!("layers[{i}].{k}.beta"), &n.beta));
        }
    }
    assert_eq!(got["weights"].as_object().unwrap().len(), weights.len());
    assert_eq!(got["vectors"].as_object().unwrap().len(), vectors.len());
    let mut values = 0;
    for (key, w) in &weights {
        let entry = &got["weights"][key.as_str()];
        assert_eq!(entry["shape"], json!([w.rows(), w.cols()]), "{key}");
        assert_eq!(entry["format"], json!(w.format_name()), "{key}");
        // `to_f32` is `QuantTensor::dequantize` for quantized weights.
        let want = f32_bits(&w.to_f32());
        let have = bits(&entry["f32_bits"]);
        assert_eq!(have.len(), want.len(), "{key}");
        if let Some(i) = (0..want.len()).find(|&i| have[i] != want[i]) {
            panic!(
                "{key} ({}): value {i} is {} in Python, {} in Rust",
                w.format_name(),
                f32::from_bits(have[i]),
                f32::from_bits(want[i])
            );
        }
        values += want.len();
    }
    for (key, v) in &vectors {
        assert_eq!(bits(&got["vectors"][key.as_str()]), f32_bits(v), "{key}");
    }
    assert_eq!(got["tokenizer"].as_str(), m.tokenizer.as_deref());
    assert!(values > 2000);
    std::fs::remove_dir_all(&dir).unwrap();
}
