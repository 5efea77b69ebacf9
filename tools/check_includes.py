#!/usr/bin/env python3
"""Checks the dependency direction of docs/ARCHITECTURE.md on the sources: every project #include
must point along an allowed arrow, and MPI/NCCL/HDF5 headers appear only where they may."""
import pathlib
import re
import sys

ALLOWED = {
    "core": {"core"},
    "kernels": {"kernels", "core"},
    "autograd": {"autograd", "kernels", "core"},
    "models": {"models", "autograd", "core"},
    "dist": {"dist", "core"},
    "data": {"data", "core"},
    "apps": {"apps", "models", "autograd", "kernels", "core", "dist", "data"},
}
# System headers confined to folders (the checkpoint code in apps/ may use HDF5).
CONFINED = {"mpi.h": {"dist"}, "nccl.h": {"dist"}, "hdf5.h": {"data", "apps"}}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def main(root: pathlib.Path) -> int:
    errors = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((root / folder).glob("*")):
            if path.suffix not in {".h", ".cpp", ".cu", ".cuh"}:
                continue
            for inc in INCLUDE.findall(path.read_text(errors="replace")):
                top = inc.split("/")[0]
                if "/" in inc and top in ALLOWED and top not in allowed:
                    errors.append(f"{path.relative_to(root)}: includes {inc}, but {folder}/ may include only {sorted(allowed)}")
                base = inc.split("/")[-1]
                if base in CONFINED and folder not in CONFINED[base]:
                    errors.append(f"{path.relative_to(root)}: includes <{inc}>, allowed only in {sorted(CONFINED[base])}")
    # kernels are plain functions over pointers: no Tensor, no autograd
    for path in sorted((root / "kernels").glob("*")):
        text = path.read_text(errors="replace") if path.is_file() else ""
        if re.search(r'#\s*include\s*"core/tensor\.h"', text):
            errors.append(f"{path.relative_to(root)}: kernels must not use Tensor (core/tensor.h)")
    for e in errors:
        print(e)
    print(f"include direction: {len(errors)} violation(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()))
