#!/usr/bin/env python3
"""Reads shards written by drwkv_data with h5py: latents are numpy '<f2' bit for bit, shapes, labels,
attributes, text embeddings and captions; the half type has exactly the fields h5py itself writes.
Usage: h5py_interop_test.py PATH/TO/drwkv_data. Exit code 77 (ctest: skipped) without numpy/h5py."""
import os
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"SKIPPED: numpy/h5py not importable ({e}); install them with tools/install-deps.sh")
    sys.exit(77)


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"drwkv_data {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


BIN = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    rng = np.random.default_rng(5)
    n, c, h, w = 21, 4, 6, 10
    lat = rng.standard_normal((n, c, h, w)).astype("<f2")
    flat = lat.view("<u2").reshape(-1)
    flat[:6] = [0x0001, 0x8000, 0x7BFF, 0x7C00, 0x7E01, 0xFC00]  # subnormal, -0, max, inf, NaN payload, -inf
    labels = rng.integers(-1, 7, size=n).astype("<i8")
    np.save(os.path.join(tmp, "lat.npy"), lat)
    np.save(os.path.join(tmp, "labels.npy"), labels)
    out = os.path.join(tmp, "ds")
    run("pack", "npy", "--latents", os.path.join(tmp, "lat.npy"), "--labels", os.path.join(tmp, "labels.npy"),
        "--out", out, "--shard-size", "8", "--encoder", "sd-vae-ft-ema")

    shards = sorted(f for f in os.listdir(out) if f.endswith(".h5"))
    check(shards == ["shard-00000-of-00003.h5", "shard-00001-of-00003.h5", "shard-00002-of-00003.h5"], f"shards {shards}")
    got, got_labels = [], []
    for k, name in enumerate(shards):
        with h5py.File(os.path.join(out, name), "r") as f:
            d = f["latent"]
            check(d.dtype == np.dtype("<f2"), f"latent dtype {d.dtype}")
            check(d.shape == (min(8, n - 8 * k), c, h, w), f"latent shape {d.shape}")
            t = d.id.get_type()
            check((t.get_size(), t.get_fields(), t.get_ebias(), t.get_order()) ==
                  (2, (15, 10, 5, 0, 10), 15, h5py.h5t.ORDER_LE), "half type fields")
            check(f["label"].dtype == np.dtype("<i4") and f["sample_id"].dtype == np.dtype("<u8"), "label/id dtypes")
            a = f.attrs
            check(a["format"] == "drwkv-shard" and int(a["format_version"]) == 1, "format attributes")
            check(int(a["complete"]) == 1 and int(a["shard_index"]) == k and int(a["shard_count"]) == 3, "shard attrs")
            check(list(a["layout_shape"]) == [c, h, w] and a["layout_kind"] == "latent" and a["layout_dtype"] == "f16",
                  "layout attributes")
            check(abs(float(a["latent_scale_factor"]) - 0.18215) < 1e-12 and a["image_encoder"] == "sd-vae-ft-ema",
                  "latent attributes")
            check(int(a["first_global_index"]) == 8 * k and int(a["sample_count"]) == d.shape[0], "counts")
            check(len(a["xxh64_latent"]) == 16, "checksum attribute")
            try:
                import xxhash
                check(xxhash.xxh64(d[...].tobytes()).hexdigest() == a["xxh64_latent"], "xxh64 of latent bytes")
            except ImportError:
                pass
            # an h5py-written '<f2' dataset has the same type as ours
            with h5py.File(os.path.join(tmp, "ref.h5"), "w") as r:
                r.create_dataset("x", data=np.zeros(3, "<f2"))
                rt = r["x"].id.get_type()
                check(rt.get_fields() == t.get_fields() and rt.get_ebias() == t.get_ebias() and
                      rt.get_size() == t.get_size(), "same half type as h5py")
            got.append(d[...])
            got_labels.append(f["label"][...])
    got = np.concatenate(got)
    check(np.array_equal(got.view("<u2"), lat.view("<u2")), "latent bits round trip")
    check(np.array_equal(np.concatenate(got_labels), labels.astype("<i4")), "labels round trip")

    # text attached to the same samples
    L, D = 4, 6
    emb = rng.standard_normal((n, L, D)).astype("<f4")
    lens = rng.integers(0, L + 1, size=n).astype("<u2")
    np.save(os.path.join(tmp, "emb.npy"), emb)
    np.save(os.path.join(tmp, "len.npy"), lens)
    caps = [f"caption {i} caf\u00e9" if i % 4 else "" for i in range(n)]
    with open(os.path.join(tmp, "cap.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(caps) + "\n")
    text = os.path.join(tmp, "text")
    run("pack", "text", "--dataset", out, "--emb", os.path.join(tmp, "emb.npy"), "--len", os.path.join(tmp, "len.npy"),
        "--captions", os.path.join(tmp, "cap.txt"), "--out", text, "--encoder", "clip-vit-l-14")
    with h5py.File(os.path.join(text, "shard-00001-of-00003.h5"), "r") as f:
        e = f["text/emb"]
        check(e.dtype == np.dtype("<f2") and e.shape == (8, L, D), f"text/emb {e.dtype} {e.shape}")
        check(np.array_equal(e[...], emb[8:16].astype("<f2")), "text embedding values")
        check(np.array_equal(f["text/len"][...], lens[8:16]) and f["text/len"].dtype == np.dtype("<u2"), "text/len")
        off = f["text/caption_offsets"][...]
        raw = f["text/caption_bytes"][...].tobytes()
        decoded = [raw[off[i]:off[i + 1]].decode("utf-8") for i in range(8)]
        check(decoded == caps[8:16], f"captions {decoded}")
        check(f["text/caption_bytes"].compression == "gzip", "captions are compressed")
        check(f.attrs["text_encoder"] == "clip-vit-l-14", "text encoder attribute")
    report = run("inspect", text, "--verify", "--json")
    check('"verified' in report, "inspect --verify")
print("h5py interop: OK")
