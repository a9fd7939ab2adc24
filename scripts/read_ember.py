#!/usr/bin/env python3
"""Reference reader for Ember's `.ember` artifact, using only the Python standard library.

It follows docs/format.md and nothing else: it parses the safetensors header by hand, reads the
manifest in `__metadata__["ember"]`, unpacks every weight's codes and dequantizes them with the
exact f32 operation order of Ember's Rust code (every f32 operation is evaluated in double
precision and rounded to f32, which is exact for a single +, -, * of two f32 values).

    python3 scripts/read_ember.py model.ember                 # summary of every weight
    python3 scripts/read_ember.py model.ember --dump out.json # every value, as f32 bit patterns
    python3 scripts/read_ember.py model.ember --tokenizer tokenizer.json

The dump is a JSON object:
    {"format_version": 1,
     "weights":  {"embeddings.word": {"shape": [r, c], "format": "int8", "f32_bits": [...]}, ...},
     "vectors":  {"layers[0].query.bias": [...f32 bits...], "embeddings.norm.gamma": [...], ...},
     "tokenizer": "<tokenizer.json text>" or null}
Keys are the manifest's key paths. Pure Python: a MiniLM-sized file takes about 20 seconds.
"""

import argparse
import json
import math
import struct
import sys
import zlib
from array import array

MAX_HEADER_BYTES = 100_000_000
DTYPE_SIZE = {"F32": 4, "I8": 1, "U8": 1}
LINEARS = ["query", "key", "value", "attn_out", "ffn_in", "ffn_out"]
NORMS = ["attn_norm", "out_norm"]


class EmberError(Exception):
    pass


def round_f32(values):
    """Rounds Python floats (f64) to the nearest f32, ties to even (a C `(float)` cast)."""
    return array("f", values).tolist()


def f32_values(raw):
    a = array("f")
    a.frombytes(raw)
    if sys.byteorder == "big":
        a.byteswap()
    return a.tolist()


def f32_bits(values):
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in values]


def read_file(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise EmberError(f"{path}: {len(data)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise EmberError(f"{path}: header length {n} does not fit the {len(data)}-byte file")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {})
    if "ember" not in meta:
        raise EmberError(f"{path}: no __metadata__.ember manifest")
    manifest = json.loads(meta["ember"])
    if manifest.get("format_version") != 1:
        raise EmberError(f"{path}: format_version {manifest.get('format_version')} (this reader reads 1)")
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        if base + end > len(data):
            raise EmberError(f"{path}: tensor {name} runs past the end of the file")
        tensors[name] = (info["dtype"], info["shape"], data[base + begin : base + end])
    return manifest, tensors


def tensor(tensors, ref):
    """The bytes of a manifest tensor reference, after checking its dtype and shape."""
    name = ref["name"]
    if name not in tensors:
        raise EmberError(f"tensor {name} is missing")
    dtype, shape, raw = tensors[name]
    if dtype != ref["dtype"] or shape != ref["shape"]:
        raise EmberError(f"tensor {name}: {dtype} {shape} in the file, {ref['dtype']} {ref['shape']} declared")
    count = 1
    for d in shape:
        count *= d
    if len(raw) != count * DTYPE_SIZE[dtype]:
        raise EmberError(f"tensor {name}: {len(raw)} bytes for {dtype} {shape}")
    return raw


def group_ranges(rows, cols, layout):
    """Every scale group's flat range in the row-major [rows, cols] weight, in scale order."""
    kind = layout["kind"]
    if kind == "per_row":
        return [range(r * cols, (r + 1) * cols) for r in range(rows)]
    if kind == "chunks":
        g = layout["count"]
        size = rows * cols // g
        return [range(k * size, (k + 1) * size) for k in range(g)]
    if kind == "row_groups":
        g = layout["size"]
        out = []
        for r in range(rows):
            for c in range(0, cols, g):
                out.append(range(r * cols + c, r * cols + min(c + g, cols)))
        return out
    raise EmberError(f"unknown layout {kind}")


MINIFLOAT = {"e4m3": (4, 3), "e5m2": (5, 2), "e3m2": (3, 2), "e2m1": (2, 1)}


def minifloat(fmt):
    """value(code) of a minifloat format: sign bit above exponent and mantissa, exponent bias
    2^(e-1)-1, subnormals at exponent 0; e4m3 (OCP FN) has NaN at S.1111.111 and no infinities,
    e5m2 has inf/NaN at exponent 11111; e3m2 and e2m1 have no special values."""
    e_bits, m_bits = MINIFLOAT[fmt]
    bias = (1 << (e_bits - 1)) - 1
    max_exp = (1 << e_bits) - 1
    values = []
    for code in range(1 << (e_bits + m_bits)):
        e, m = code >> m_bits, code & ((1 << m_bits) - 1)
        if fmt == "e4m3" and e == max_exp and m == (1 << m_bits) - 1:
            break
        if fmt == "e5m2" and e == max_exp:
            break
        frac = m / (1 << m_bits)
        values.append(frac * 2.0 ** (1 - bias) if e == 0 else (1.0 + frac) * 2.0 ** (e - bias))
    sign = 1 << (e_bits + m_bits)

    def value(code):
        mag = code & (sign - 1)
        v = values[mag] if mag < len(values) else math.nan
        return -v if code & sign else v

    return value


def dequantize(w, tensors):
    """The weight's values, row-major, as Python floats holding f32 values."""
    rows, cols = w["shape"]
    if w["format"] == "f32":
        return f32_values(tensor(tensors, w["values"]))
    scheme, numerics = w["scheme"], w["numerics"]
    code_bits, row_bytes = w["code_bits"], w["row_bytes"]
    codes = tensor(tensors, w["codes"])
    scales = f32_values(tensor(tensors, w["scales"]))
    zeros = None
    if w["zeros"] is not None:
        raw = tensor(tensors, w["zeros"])
        zeros = [float(b) for b in raw] if w["zeros"]["dtype"] == "U8" else f32_values(raw)
    mask = (1 << code_bits) - 1

    # Stored code u → the code q of numerics (docs/format.md, "Codes").
    if scheme == "symmetric" and code_bits == 8:
        load = lambda u: u - 256 if u >= 128 else u  # noqa: E731  (I8, two's complement)
    elif scheme == "symmetric":
        load = lambda u: u - 8  # noqa: E731
    elif scheme == "ternary":
        load = lambda u: u - 1  # noqa: E731
    elif scheme == "binary":
        load = lambda u: 1 if u == 1 else -1  # noqa: E731
    else:  # asymmetric (unsigned code), float (bit pattern)
        load = lambda u: u  # noqa: E731
    grid = minifloat(w["float_format"]) if scheme == "float" else None

    q = [0] * (rows * cols)
    for r in range(rows):
        row = r * row_bytes
        for c in range(cols):
            bit = c * code_bits
            q[r * cols + c] = load((codes[row + bit // 8] >> (bit % 8)) & mask)

    out = [0.0] * (rows * cols)
    for g, span in enumerate(group_ranges(rows, cols, w["layout"])):
        s = scales[g]
        z = zeros[g] if zeros is not None else 0.0
        idx = list(span)
        if scheme == "asymmetric" and numerics == "ember":
            # (q - z) * s, two f32 operations
            vals = round_f32([d * s for d in round_f32([q[i] - z for i in idx])])
        elif scheme == "asymmetric":
            # q * s + z (DeepSpeed), two f32 operations
            vals = round_f32([v + z for v in round_f32([q[i] * s for i in idx])])
        elif scheme == "float":
            vals = round_f32([grid(q[i]) * s for i in idx])
        else:
            vals = round_f32([q[i] * s for i in idx])
        for i, v in zip(idx, vals):
            out[i] = v
    return out


def modules(manifest):
    """(key path, weight entry) for every weight, and (key path, tensor ref) for every vector."""
    weights, vectors = [], []
    e = manifest["embeddings"]
    for k in ["word", "position", "token_type"]:
        weights.append((f"embeddings.{k}", e[k]))
    vectors += [("embeddings.norm.gamma", e["norm"]["gamma"]), ("embeddings.norm.beta", e["norm"]["beta"])]
    for i, layer in enumerate(manifest["layers"]):
        for k in LINEARS:
            weights.append((f"layers[{i}].{k}", layer[k]["weight"]))
            if layer[k]["bias"] is not None:
                vectors.append((f"layers[{i}].{k}.bias", layer[k]["bias"]))
        for k in NORMS:
            vectors.append((f"layers[{i}].{k}.gamma", layer[k]["gamma"]))
            vectors.append((f"layers[{i}].{k}.beta", layer[k]["beta"]))
    return weights, vectors


def tokenizer_text(manifest, tensors):
    t = manifest["tokenizer"]
    if t is None:
        return None
    if t["compression"] != "zlib":
        raise EmberError(f"tokenizer compression {t['compression']}")
    d = zlib.decompressobj()
    text = d.decompress(tensor(tensors, t["tensor"]), t["uncompressed_bytes"] + 1)
    if len(text) != t["uncompressed_bytes"] or not d.eof:
        raise EmberError("tokenizer does not inflate to its declared length")
    return text.decode("utf-8")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--dump", help="write every value (f32 bit patterns) as JSON to this file")
    ap.add_argument("--tokenizer", help="write the embedded tokenizer.json to this file")
    args = ap.parse_args()
    try:
        manifest, tensors = read_file(args.file)
        weights, vectors = modules(manifest)
        dump = {"format_version": manifest["format_version"], "weights": {}, "vectors": {}}
        a = manifest["architecture"]
        print(f"{a['name']}: {len(manifest['layers'])} layers, d_model {a['d_model']}, vocab {a['vocab_size']}")
        for key, w in weights:
            values = dequantize(w, tensors)
            finite = [v for v in values if math.isfinite(v)]
            lo, hi = (min(finite), max(finite)) if finite else (math.nan, math.nan)
            print(f"{key:24} {w['format']:9} {str(w['shape']):12} [{lo:+.4g}, {hi:+.4g}]")
            if args.dump:
                dump["weights"][key] = {"shape": w["shape"], "format": w["format"], "f32_bits": f32_bits(values)}
        for key, ref in vectors:
            values = f32_values(tensor(tensors, ref))
            if args.dump:
                dump["vectors"][key] = f32_bits(values)
        text = tokenizer_text(manifest, tensors)
        print(f"tokenizer: {'none' if text is None else f'{len(text)} characters'}")
        if args.dump:
            dump["tokenizer"] = text
            with open(args.dump, "w", encoding="utf-8") as f:
                json.dump(dump, f)
        if args.tokenizer and text is not None:
            with open(args.tokenizer, "wb") as f:
                f.write(text.encode("utf-8"))
    except (EmberError, KeyError, ValueError, OSError) as e:
        print(f"read_ember.py: {args.file}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
