#!/usr/bin/env python3
"""The hostile-user sweep: bad configs, artifacts, outputs, inputs and environment against the
`ember` binary, every command under a timeout and a memory limit, never downloading.

Each case names the phrase (or JSON pointer) its error must contain. The tally counts:
  clear      refused (non-zero exit) with the phrase
  weak       refused, but without the phrase
  accepted   exit 0 on bad input (wrongly accepted)
  panic      a Rust panic (exit 101 or "panicked at")
  hang       killed by the timeout
  crash      killed by a signal (or the memory limit)
  data-loss  a protected file changed

Run:  python3 scripts/hostile_sweep.py [--ember target/debug/ember]
It needs MiniLM in the cache ($EMBER_CACHE or ~/.cache/ember; run the tests or the compose
example once) for the artifact cases, and skips them (saying so) otherwise.
"""
import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 120
MEMORY_BYTES = 4 << 30


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


class Sweep:
    def __init__(self, ember, env):
        self.ember = ember
        self.env = env
        self.rows = []
        self.edges = []

    def edge(self, name, ok, detail=""):
        """An edge case that must work (not a bad input): a long file name, a timing budget."""
        self.edges.append((name, ok, detail))

    def run(self, name, args, phrase, protect=(), env=None):
        before = {p: open(p, "rb").read() for p in protect if os.path.isfile(p)}
        e = dict(self.env, **(env or {}))
        try:
            out = subprocess.run([self.ember] + args, capture_output=True, timeout=TIMEOUT_S, env=e,
                                 cwd=ROOT, preexec_fn=limit_memory)
            code, err = out.returncode, out.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            code, err = None, ""
        lost = [p for p, b in before.items() if not os.path.isfile(p) or open(p, "rb").read() != b]
        if os.path.exists("/dev/null") and os.path.isfile("/dev/null"):
            lost.append("/dev/null")
        if lost:
            verdict = "data-loss"
        elif code is None:
            verdict = "hang"
        elif code < 0:
            verdict = "crash"
        elif code == 101 or "panicked at" in err:
            verdict = "panic"
        elif code == 0:
            verdict = "accepted"
        elif phrase in err:
            verdict = "clear"
        else:
            verdict = "weak"
        self.rows.append((verdict, name, phrase, err.strip().splitlines()[:1]))

    def report(self):
        kinds = ["clear", "weak", "accepted", "panic", "hang", "crash", "data-loss"]
        for verdict, name, phrase, first in self.rows:
            if verdict != "clear":
                print(f"{verdict:9}  {name}: wants `{phrase}`; got {first}")
        tally = {k: sum(1 for r in self.rows if r[0] == k) for k in kinds}
        print(f"bad inputs tried: {len(self.rows)}; " + ", ".join(f"{k} {v}" for k, v in tally.items()))
        for name, ok, detail in self.edges:
            print(f"{'ok' if ok else 'FAILED':9}  edge: {name} {detail}")
        failed = sum(1 for e in self.edges if not e[1])
        print(f"edge cases that must work: {len(self.edges)}; failed {failed}")
        return tally, failed


def config_cases(s, tmp):
    bad = os.path.join(ROOT, "tests", "bad_configs")
    for f in sorted(os.listdir(bad)):
        if not f.endswith(".json"):
            continue
        expected = open(os.path.join(bad, f[:-5] + ".expected"), encoding="utf-8").read().splitlines()[0]
        # The pointer or position the message starts with is the phrase.
        phrase = expected[len("error: "):].split(": ")[0]
        s.run(f"config {f}", ["check", "--config", os.path.join(bad, f)], phrase)
    s.run("config /dev/zero", ["check", "--config", "/dev/zero"], "larger than")
    latin1 = os.path.join(tmp, "latin1.json")
    open(latin1, "wb").write(b'{"description": "caf\xe9"}')
    s.run("config not UTF-8", ["check", "--config", latin1], "not UTF-8 text (invalid byte at offset 20)")
    s.run("config missing", ["check", "--config", os.path.join(tmp, "none.json")], "none.json")
    huge = os.path.join(tmp, "hf")
    os.makedirs(huge, exist_ok=True)
    json.dump({"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 10 ** 9,
               "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512},
              open(os.path.join(huge, "config.json"), "w"))
    s.run("HF config 1e9 layers", ["plan", "--config", "configs/zeroquant-w8a8.json", "--model", huge],
          "over the limit of 1024")
    good_hf = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
               "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512}
    for name, key, value, phrase in [
        ("hidden_size 2^62", "hidden_size", 1 << 62, "hidden_size 4611686018427387904 is over the limit"),
        ("hidden_size 0", "hidden_size", 0, "hidden_size must be positive"),
        ("num_attention_heads 0", "num_attention_heads", 0, "num_attention_heads must be positive"),
        ("heads do not divide hidden", "num_attention_heads", 7, "num_attention_heads"),
        ("model_type gpt2", "model_type", "gpt2", "model_type `gpt2` is not supported"),
    ]:
        d = os.path.join(tmp, "hf-" + key + "-" + str(value)[:12])
        os.makedirs(d, exist_ok=True)
        json.dump(dict(good_hf, **{key: value}), open(os.path.join(d, "config.json"), "w"))
        for cmd in ["check", "plan"]:
            s.run(f"HF config {name}: {cmd}", [cmd, "--config", "configs/zeroquant-w8a8.json", "--model", d], phrase)
    big_hf = os.path.join(tmp, "hf-big")
    os.makedirs(big_hf, exist_ok=True)
    open(os.path.join(big_hf, "config.json"), "w").write('{"pad": "' + "x" * (2 << 20) + '"}')
    s.run("HF config.json of 2 MiB", ["plan", "--config", "configs/zeroquant-w8a8.json", "--model", big_hf], "larger than")

    def write_config(name, patterns, description="d"):
        p = os.path.join(tmp, name)
        json.dump({"description": description, "compression_training": {"weight_quantization": {
            "shared_parameters": {"enabled": True, "quantize_weight_in_forward": True},
            "different_groups": {"g": {"params": {"start_bits": 8, "target_bits": 8}, "modules": patterns}}}}},
            open(p, "w"))
        return p
    s.run("config with a 17 MB description", ["check", "--config", write_config("big.json", ["intermediate"], "x" * (17 << 20))],
          "larger than")
    many = [f"layer\\.{i % 6}\\.intermediate" for i in range(10_000)]
    s.run("config with 10,001 module patterns", ["check", "--config", write_config("many.json", many + ["intermediate"])],
          "more than 10000 module patterns")
    s.run("config with 100 patterns that match nothing", ["check", "--config",
          write_config("nomatch.json", [f"no_such_module_{i}" for i in range(100)])], "and 60 more errors")
    # 10,000 patterns are allowed and must plan within the 1 s budget (planning stays linear).
    ten_k = write_config("ten-k.json", many)
    t0 = time.monotonic()
    out = subprocess.run([s.ember, "plan", "--config", ten_k], capture_output=True, env=s.env, cwd=ROOT)
    took = time.monotonic() - t0
    s.edge("plan of 10,000 module patterns within 1 s", out.returncode == 0 and took < 1.0, f"({took:.2f} s)")


def output_cases(s, tmp):
    cfg = os.path.join(tmp, "c.json")
    shutil.copy(os.path.join(ROOT, "configs", "w8-weight-only.json"), cfg)
    refused = os.path.join(tmp, "refused.json")
    shutil.copy(os.path.join(ROOT, "configs", "sparse-l1-50.json"), refused)
    victim = os.path.join(tmp, "victim.ember")
    open(victim, "wb").write(b"an artifact")
    text = os.path.join(tmp, "in.txt")
    open(text, "w").write("A man is playing a guitar.\n")
    link = os.path.join(tmp, "link.json")
    os.symlink(cfg, link)
    hard = os.path.join(tmp, "hard.json")
    os.link(cfg, hard)
    keep = [cfg, refused, victim, text]
    for name, args, phrase in [
        ("--out is the config", ["compose", "--quiet", "--config", cfg, "--out", cfg], "is also an input"),
        ("--out is a symlink to the config", ["compose", "--quiet", "--config", cfg, "--out", link], "is also an input"),
        ("--out is a hard link to the config", ["compose", "--quiet", "--config", cfg, "--out", hard], "is also an input"),
        ("--events is the config", ["compose", "--quiet", "--config", cfg, "--events", cfg], "is also an input"),
        ("refused compose, existing events file", ["compose", "--quiet", "--config", refused, "--events", victim], "not supported yet"),
        ("--out /dev/null", ["compose", "--quiet", "--config", cfg, "--out", "/dev/null"], "not a regular file"),
        ("--out is a directory", ["compose", "--quiet", "--config", cfg, "--out", tmp], "is a directory"),
        ("--out ends in /", ["compose", "--quiet", "--config", cfg, "--out", tmp + "/x/"], "not a file path"),
        ("--out under a file", ["compose", "--quiet", "--config", cfg, "--out", victim + "/m.ember"], "is not a directory"),
        ("embed --output is --input", ["embed", "--model", "minilm-l6", "--input", text, "--output", text], "is also an input"),
        ("schema --output /dev/null", ["schema", "--output", "/dev/null"], "not a regular file"),
    ]:
        s.run(f"output {name}", args, phrase, protect=keep)
    # Any legal file name works (temp names are short), and stale temps of dead runs are removed.
    long_name = os.path.join(tmp, "s" * 250 + ".json")
    out = subprocess.run([s.ember, "schema", "--output", long_name], capture_output=True, env=s.env, cwd=ROOT)
    s.edge("an output named with 255 bytes", out.returncode == 0 and os.path.isfile(long_name))
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    stale = os.path.join(tmp, f".ember-{dead_pid.pid}-0.tmp")
    open(stale, "w").write("half an artifact")
    out = subprocess.run([s.ember, "schema", "--output", os.path.join(tmp, "schema.json")], capture_output=True,
                         env=s.env, cwd=ROOT)
    s.edge("a stale temp file of a dead run is removed by the next write", out.returncode == 0 and not os.path.exists(stale))


def input_cases(s, tmp, cache):
    if not os.path.isfile(os.path.join(cache, "minilm-l6", ".complete")):
        print(f"(input cases skipped: no MiniLM in {cache})")
        return
    out = os.path.join(tmp, "o-in.jsonl")
    latin1 = os.path.join(tmp, "latin1.txt")
    open(latin1, "wb").write(b"caf\xe9 au lait\n")
    empty = os.path.join(tmp, "empty.txt")
    open(empty, "w").write("")
    for name, path, phrase in [
        ("/dev/zero", "/dev/zero", "larger than"),
        ("not UTF-8", latin1, "UTF-8"),
        ("missing", os.path.join(tmp, "no-such.txt"), "no-such.txt"),
        ("a directory", tmp, tmp),
    ]:
        s.run(f"embed --input {name}", ["embed", "--model", "minilm-l6", "--input", path, "--output", out], phrase)
    for name, path, phrase in [
        ("not UTF-8", latin1, "UTF-8"),
        ("/dev/zero", "/dev/zero", "larger than"),
        ("empty", empty, "has no sentences"),
    ]:
        s.run(f"calibration data {name}", ["compose", "--quiet", "--config", write_calibration_config(tmp, path)], phrase)


def write_training_config(tmp, data, name="train.json", steps=2):
    cfg = json.load(open(os.path.join(ROOT, "configs", "w4-g64-a8-kd.json")))
    cfg.pop("$schema", None)
    cfg["training"].update(data=data, steps=steps, warmup_steps=0, batch_size=4, max_seq_len=24, checkpoint_every=1)
    p = os.path.join(tmp, name)
    json.dump(cfg, open(p, "w"))
    return p


def training_cases(s, tmp, cache):
    """Training text and checkpoints are user input and user files like the others."""
    if not os.path.isfile(os.path.join(cache, "minilm-l6", ".complete")):
        print(f"(training cases skipped: no MiniLM in {cache})")
        return
    latin1 = os.path.join(tmp, "latin1-train.txt")
    open(latin1, "wb").write(b"caf\xe9 au lait. " * 10)
    few = os.path.join(tmp, "few.txt")
    open(few, "w").write("Only one sentence here.\n")
    for name, data, phrase in [
        ("/dev/zero", "/dev/zero", "larger than"),
        ("not UTF-8", latin1, "UTF-8"),
        ("missing", os.path.join(tmp, "no-train.txt"), "no-train.txt"),
        ("smaller than a batch", few, "fewer than one batch"),
    ]:
        s.run(f"training data {name}", ["compose", "--quiet", "--config", write_training_config(tmp, data)], phrase)
    good = write_training_config(tmp, "builtin:lee_background", "good-train.json")
    out = os.path.join(tmp, "trained.ember")
    garbage = os.path.join(tmp, "garbage.ckpt")
    open(garbage, "wb").write(b"EMBERCKPT1\n" + os.urandom(64))
    notckpt = os.path.join(tmp, "not.ckpt")
    open(notckpt, "w").write("{}")
    keep = [good, garbage, notckpt]
    for name, args, phrase in [
        ("--checkpoint /dev/null", ["--checkpoint", "/dev/null"], "not a regular file"),
        ("--checkpoint is the config", ["--checkpoint", good], "is also an input"),
        ("--checkpoint equals --out", ["--checkpoint", out], "is also an input"),
        ("--resume without a checkpoint", ["--checkpoint", os.path.join(tmp, "none.ckpt"), "--resume"], "no checkpoint at"),
        ("--resume a damaged checkpoint", ["--checkpoint", garbage, "--resume"], "truncated or corrupt"),
        ("--resume a file that is not a checkpoint", ["--checkpoint", notckpt, "--resume"], "not an Ember checkpoint"),
    ]:
        s.run(f"checkpoint {name}", ["compose", "--quiet", "--config", good, "--out", out] + args, phrase, protect=keep)


def write_calibration_config(tmp, data):
    cfg = json.load(open(os.path.join(ROOT, "configs", "w8a8-static.json")))
    cfg.pop("$schema", None)
    cfg["calibration"]["data"] = data
    p = os.path.join(tmp, "calib.json")
    json.dump(cfg, open(p, "w"))
    return p


def artifact_cases(s, tmp, cache):
    if not os.path.isfile(os.path.join(cache, "minilm-l6", ".complete")):
        print(f"(artifact cases skipped: no MiniLM in {cache}; run the tests once)")
        return
    good = os.path.join(tmp, "good.ember")
    made = subprocess.run([s.ember, "compose", "--quiet", "--config", "configs/w8-weight-only.json", "--out", good],
                          capture_output=True, env=s.env, cwd=ROOT)
    if made.returncode != 0 or not os.path.isfile(good):
        print(f"(artifact cases skipped: composing a good artifact failed: {made.stderr.decode()[:200]})")
        return
    data = open(good, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])

    def variant(name, blob):
        p = os.path.join(tmp, name + ".ember")
        open(p, "wb").write(blob)
        return p

    scale = next(v for k, v in header.items() if k.endswith(".scales"))
    nan = bytearray(data)
    start = 8 + n + scale["data_offsets"][0]
    nan[start:start + 4] = struct.pack("<f", float("nan"))
    cases = [
        ("truncated", data[: len(data) // 2], "truncated"),
        ("empty", b"", "bytes"),
        ("header length huge", struct.pack("<Q", 1 << 62) + data[8:], "header"),
        ("header not JSON", data[:8] + b"!" + data[9:], "header"),
        ("NaN scale", bytes(nan), "not a finite number"),
        ("plain safetensors", open(os.path.join(cache, "minilm-l6", "model.safetensors"), "rb").read(), "no Ember manifest"),
    ]
    body = data[8 + n:]

    def with_manifest(edit):
        h = json.loads(data[8:8 + n])
        m = json.loads(h["__metadata__"]["ember"])
        edit(m)
        h["__metadata__"]["ember"] = json.dumps(m)
        raw = json.dumps(h).encode()
        raw += b" " * (-len(raw) % 8)
        return struct.pack("<Q", len(raw)) + raw + body

    def with_tensor(name, value_bytes):
        blob = bytearray(data)
        begin, end = header[name]["data_offsets"]
        blob[8 + n + begin:8 + n + end] = (value_bytes * ((end - begin) // len(value_bytes) + 1))[: end - begin]
        return bytes(blob)

    def set_act(m, bits):
        m["layers"][0]["query"]["act"] = {"bits": bits, "symmetric": True, "numerics": "ember",
                                          "range": {"kind": "dynamic"}}

    def set_eps(m, eps):
        m["layers"][1]["attn_norm"]["eps"] = eps

    tokenizer = next(k for k in header if k.startswith("tokenizer"))
    gamma = "encoder.layer.0.output.LayerNorm.weight"
    cases += [
        ("activation bits 9", with_manifest(lambda m: set_act(m, 9)),
         "encoder.layer.0.attention.self.query: 9 bits of activation quantization"),
        ("activation bits 1", with_manifest(lambda m: set_act(m, 1)),
         "encoder.layer.0.attention.self.query: 1 bits of activation quantization"),
        ("LayerNorm eps 0", with_manifest(lambda m: set_eps(m, 0.0)),
         "encoder.layer.1.attention.output.LayerNorm: eps 0 must be finite and positive"),
        ("LayerNorm eps negative", with_manifest(lambda m: set_eps(m, -1.0)),
         "encoder.layer.1.attention.output.LayerNorm: eps -1 must be finite and positive"),
        ("unknown format version", with_manifest(lambda m: m.update(format_version=2)), "format_version"),
        ("no layers", with_manifest(lambda m: m.update(layers=[])), "manifest"),
        ("corrupt tokenizer", with_tensor(tokenizer, b"\x00\xff"), "tokenizer"),
        ("NaN LayerNorm weight", with_tensor(gamma, struct.pack("<f", float("nan"))),
         "encoder.layer.0.output.LayerNorm: gamma: value 0 is NaN"),
    ]
    text = os.path.join(tmp, "in.txt")
    for name, blob, phrase in cases:
        p = variant(name.replace(" ", "-"), blob)
        s.run(f"artifact {name}: inspect", ["inspect", p], phrase)
        s.run(f"artifact {name}: embed", ["embed", "--model", p, "--input", text, "--output", os.path.join(tmp, "o.jsonl")], phrase)
    # Finite but huge weights: the file is valid, the output would be NaN; it must be an error naming
    # where the values stop being finite, from every command that runs the model.
    huge = variant("huge-gamma", with_tensor(gamma, struct.pack("<f", 3e38)))
    s.run("artifact huge LayerNorm weight: embed", ["embed", "--model", huge, "--input", text, "--output",
          os.path.join(tmp, "o.jsonl")], "not finite from encoder.layer")
    s.run("artifact huge LayerNorm weight: eval", ["eval", "--model", huge], "not finite from encoder.layer")
    s.run("artifact huge LayerNorm weight: bench", ["bench", "--model", huge], "not finite from encoder.layer")
    s.run("embed --output is the artifact", ["embed", "--model", good, "--input", text, "--output", good],
          "is also an input", protect=[good])


def environment_cases(s, tmp):
    f = os.path.join(tmp, "cache-file")
    open(f, "w").write("x")
    s.run("EMBER_CACHE is a file", ["embed", "--model", "minilm-l6", "--input", os.path.join(tmp, "in.txt"),
                                    "--output", os.path.join(tmp, "o2.jsonl")],
          "is not a directory (EMBER_CACHE points at a file?)", env={"EMBER_CACHE": f}, protect=[f])


def cache_cases(s, tmp, cache):
    """A cached model that no longer matches its pinned sha256 is never used (and, with no network
    here, the re-fetch fails with the command to fetch it by hand)."""
    src = os.path.join(cache, "minilm-l6")
    if not os.path.isfile(os.path.join(src, ".complete")):
        print(f"(cache cases skipped: no MiniLM in {cache})")
        return
    weights = open(os.path.join(src, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", weights[:8])[0]
    flipped = bytearray(weights)
    flipped[8 + n + 1000] ^= 0x10
    nan = bytearray(weights)
    nan[8 + n:8 + n + 4] = struct.pack("<f", float("nan"))
    text = os.path.join(tmp, "in.txt")
    for name, blob in [
        ("one flipped bit", bytes(flipped)),
        ("a NaN weight", bytes(nan)),
        ("truncated", weights[: len(weights) // 3]),
        ("random bytes", os.urandom(len(weights))),
    ]:
        for cmd, args in [
            ("embed", ["embed", "--model", "minilm-l6", "--input", text, "--output", os.path.join(tmp, "o3.jsonl")]),
            ("compose", ["compose", "--config", "configs/w8-weight-only.json", "--out", os.path.join(tmp, "o3.ember")]),
            ("compose --quiet", ["compose", "--quiet", "--config", "configs/w8-weight-only.json"]),
        ]:
            # A fresh corrupted copy per command: a failed re-fetch leaves no cached model behind.
            root = os.path.join(tmp, "cache-" + name.replace(" ", "-"))
            shutil.copytree(src, os.path.join(root, "minilm-l6"))
            open(os.path.join(root, "minilm-l6", "model.safetensors"), "wb").write(blob)
            s.run(f"cached model.safetensors with {name}: {cmd}", args, "does not match its pinned sha256",
                  env={"EMBER_CACHE": root})
            shutil.rmtree(root)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ember", default=os.path.join(ROOT, "target", "debug", "ember"))
    a = ap.parse_args()
    cache = os.environ.get("EMBER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ember")
    # Never download: pip is pointed at nothing, so a fetch fails fast with its manual command.
    env = dict(os.environ, EMBER_CACHE=cache, EMBER_PYTHON="/nonexistent/python3")
    s = Sweep(a.ember, env)
    with tempfile.TemporaryDirectory(prefix="ember-sweep-") as tmp:
        config_cases(s, tmp)
        output_cases(s, tmp)
        environment_cases(s, tmp)
        input_cases(s, tmp, cache)
        training_cases(s, tmp, cache)
        cache_cases(s, tmp, cache)
        artifact_cases(s, tmp, cache)
    tally, failed = s.report()
    bad = failed + sum(tally[k] for k in ["accepted", "panic", "hang", "crash", "data-loss"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
