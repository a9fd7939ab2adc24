"""Golden outputs for Ember's quantizer numerics, computed independently with numpy float32.

DeepSpeed numerics are transcribed from DeepSpeed's compression/utils.py (SymQuantizer,
AsymQuantizer, TernaryQuantizer, BinaryQuantizer; compat-notes §2) with the same float32 operation
order; numpy's round is round-half-to-even like torch's. Ember numerics follow DESIGN §5.

Run:  python3 scripts/golden_numerics.py > tests/data/golden/numerics.json   (needs numpy)
"""
import json
import numpy as np

f32 = np.float32


def weights():
    # A fixed, reproducible 48x64 weight with a zero row and a constant row (the edge cases).
    rng = np.random.default_rng(20261123)
    w = (rng.standard_normal((48, 64)) * 0.05).astype(f32)
    w[5, :] = 0.0
    w[7, :] = f32(0.0123)
    return w


def ds_sym(x, bits, groups):
    q_range = f32(2 ** bits)
    g = x.reshape(groups, -1)
    mx = np.abs(g).max(axis=1, keepdims=True).astype(f32)
    scale = (f32(2) * mx / q_range).astype(f32)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.clip(np.round(g / scale), -q_range // 2, q_range // 2 - 1) * scale
    out[(mx == 0).ravel()] = 0.0  # DeepSpeed gives NaN here (B7); Ember returns zeros
    return out.astype(f32).reshape(x.shape)


def ds_asym(x, bits, groups):
    q_range = f32(2 ** bits)
    g = x.reshape(groups, -1)
    mn = g.min(axis=1, keepdims=True)
    mx = g.max(axis=1, keepdims=True)
    scale = ((mx - mn) / q_range).astype(f32)
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = (np.round(mn / scale) * scale).astype(f32)
        out = (np.clip(np.round((g - zero) / scale), 0, q_range - 1) * scale + zero).astype(f32)
    const = (scale == 0).ravel()
    out[const] = g[const]  # constant groups keep their value (DeepSpeed: NaN)
    return out.reshape(x.shape)


def ember_sym(x, bits, groups):
    qmax = f32(2 ** (bits - 1) - 1)
    g = x.reshape(groups, -1)
    out = np.zeros_like(g)
    for i, row in enumerate(g):
        m = f32(np.abs(row).max())
        if m == 0:
            continue
        s = f32(m / qmax)
        for cand in (s, np.nextafter(s, f32(np.inf)), np.nextafter(s, f32(-np.inf))):
            if f32(cand * qmax) == m:
                s = f32(cand)
                break
        out[i] = np.clip(np.round(row / s), -qmax, qmax) * s
    return out.astype(f32).reshape(x.shape)


def exact_scale(m, qmax):
    # max/qmax, nudged by at most one ulp so that scale·qmax == max when such a float exists.
    s = f32(m / qmax)
    for cand in (s, np.nextafter(s, f32(np.inf)), np.nextafter(s, f32(-np.inf))):
        if f32(cand * qmax) == m:
            return f32(cand)
    return s


def ember_asym(x, bits, groups):
    # DESIGN §5 with the range widened to include 0 (as PyTorch and ONNX do), so the zero point is
    # an integer code in [0, 2^b - 1]; a one-signed group keeps its extreme exactly.
    top = f32(2 ** bits - 1)
    g = x.reshape(groups, -1)
    out = np.zeros_like(g)
    for i, row in enumerate(g):
        mn = min(f32(row.min()), f32(0))
        mx = max(f32(row.max()), f32(0))
        if mn == 0:
            s = exact_scale(mx, top)
        elif mx == 0:
            s = exact_scale(f32(-mn), top)
        else:
            s = f32((mx - mn) / top)
        if s == 0:
            continue
        z = np.round(f32(-mn) / s)
        q = np.clip(np.round(row / s) + z, 0, top)
        out[i] = (q - z) * s
    return out.astype(f32).reshape(x.shape)


def ternary(x, groups):
    g = x.reshape(groups, -1).astype(np.float64)
    out = np.zeros(g.shape, dtype=f32)
    for i, row in enumerate(g):
        delta = f32(0.7) * f32(np.abs(row).sum() / row.size)
        keep = np.abs(row.astype(f32)) > delta
        alpha = f32(np.abs(row[keep]).sum() / keep.sum()) if keep.any() else f32(0)
        r = row.astype(f32)
        out[i] = np.where(r > delta, alpha, np.where(r < -delta, -alpha, f32(0)))
    return out.reshape(x.shape)


def binary(x, groups):
    g = x.reshape(groups, -1).astype(np.float64)
    out = np.zeros(g.shape, dtype=f32)
    for i, row in enumerate(g):
        alpha = f32(np.abs(row).sum() / row.size)
        out[i] = np.sign(row).astype(f32) * alpha
    return out.reshape(x.shape)


def main():
    w = weights()
    cases = []
    for bits, groups in [(8, 1), (8, 48), (4, 48), (4, 16)]:
        cases.append({"name": f"deepspeed-sym-{bits}-g{groups}", "numerics": "deepspeed", "scheme": "symmetric", "bits": bits, "groups": groups, "out": ds_sym(w, bits, groups).ravel().tolist()})
        cases.append({"name": f"deepspeed-asym-{bits}-g{groups}", "numerics": "deepspeed", "scheme": "asymmetric", "bits": bits, "groups": groups, "out": ds_asym(w, bits, groups).ravel().tolist()})
        cases.append({"name": f"ember-sym-{bits}-g{groups}", "numerics": "ember", "scheme": "symmetric", "bits": bits, "groups": groups, "out": ember_sym(w, bits, groups).ravel().tolist()})
        cases.append({"name": f"ember-asym-{bits}-g{groups}", "numerics": "ember", "scheme": "asymmetric", "bits": bits, "groups": groups, "out": ember_asym(w, bits, groups).ravel().tolist()})
    for groups in [1, 48]:
        cases.append({"name": f"ternary-g{groups}", "numerics": "deepspeed", "scheme": "ternary", "bits": 2, "groups": groups, "out": ternary(w, groups).ravel().tolist()})
        cases.append({"name": f"binary-g{groups}", "numerics": "deepspeed", "scheme": "binary", "bits": 1, "groups": groups, "out": binary(w, groups).ravel().tolist()})
    print(json.dumps({"provenance": "scripts/golden_numerics.py (numpy " + np.__version__ + ", float32)", "rows": 48, "cols": 64, "weight": w.ravel().tolist(), "cases": cases}))


if __name__ == "__main__":
    main()
