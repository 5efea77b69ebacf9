#!/usr/bin/env python3
"""A drwkv checkpoint is an ordinary HDF5 file: h5py reads its tensors, attributes and checksums.

usage: checkpoint_h5py_test.py PATH/TO/drwkv_train WORKDIR
Trains two steps of a tiny model on a toy dataset (through drwkv_data's Fashion-MNIST packer when the
Debian dataset is installed, else skipped with 77), then opens the checkpoint with h5py."""
import os
import subprocess
import sys

try:
    import h5py
    import numpy as np
except ImportError:
    print("numpy/h5py not installed: skipped")
    sys.exit(77)

train, work = sys.argv[1], sys.argv[2]
data_tool = os.path.join(os.path.dirname(train), "drwkv_data")
src = "/usr/share/datasets/fashion-mnist"
if not os.path.exists(os.path.join(src, "t10k-images-idx3-ubyte.gz")):
    print("dataset-fashion-mnist not installed: skipped")
    sys.exit(77)
os.makedirs(work, exist_ok=True)
data = os.path.join(work, "fmnist")
if not os.path.exists(os.path.join(data, "index.json")):
    subprocess.run([data_tool, "pack", "fmnist", "--split", "test", "--out", data], check=True)
recipe = os.path.join(work, "tiny.yaml")
out = os.path.join(work, "run")
with open(recipe, "w") as f:
    f.write(f"run: {{out_dir: {out}, max_steps: 2, device: cpu}}\n"
            "model: {depth: 3, width: 16, patch: 4, in_channels: 1, image_size: 32, num_classes: 10}\n"
            f"data: {{path: {data}}}\ntrain: {{global_batch: 4, micro_batch: 4}}\n"
            "checkpoint: {every_steps: 0}\nsample: {every_steps: 0}\n")
subprocess.run([train, recipe], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
path = os.path.join(out, "checkpoints", "ckpt-00000002.h5")

with h5py.File(path, "r") as f:
    assert f.attrs["format"] == "drwkv-checkpoint", f.attrs["format"]
    assert int(f.attrs["step"]) == 2 and int(f.attrs["complete"]) == 1
    assert "model:" in f.attrs["recipe"] and len(f.attrs["dataset_fingerprint"]) == 16
    groups = ["params", "ema", "optimizer/m", "optimizer/v"]
    names = sorted(f["params"].keys())
    assert "pos_embed" in names and "final_layer.linear.weight" in names, names[:5]
    total = 0
    for g in groups:
        assert sorted(f[g].keys()) == names, g
        for n in names:
            ds = f[g][n]
            assert ds.dtype == np.float32, (g, n, ds.dtype)
            a = ds[...]
            assert np.all(np.isfinite(a)), (g, n)
            if g == "params":
                total += a.size
            # the stored checksum is xxh64 of the raw little-endian bytes: verified when xxhash is present
            try:
                import xxhash
                assert xxhash.xxh64(np.ascontiguousarray(a).astype("<f4").tobytes()).hexdigest() == ds.attrs["xxh64"], (g, n)
            except ImportError:
                assert len(ds.attrs["xxh64"]) == 16
    assert total == int(f.attrs["parameter_count"]), (total, int(f.attrs["parameter_count"]))
    pe = f["params"]["pos_embed"][...]
    assert pe.shape == (64, 16)  # 8×8 tokens, width 16
print("h5py reads the checkpoint:", path)
