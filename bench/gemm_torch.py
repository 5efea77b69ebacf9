#!/usr/bin/env python3
"""PyTorch reference for bench/gemm_gpu_bench.cpp: the same GEMMs (labels, shapes, dtypes) timed with
torch.matmul on the same GPU, CUDA events around every iteration, median after warm-up.

Rows (M = 65536 tokens):
  fwd_*: Y = X @ W.t()             bf16 x bf16 -> bf16
  dX_*:  dX = dY @ W               bf16 x bf16 -> bf16
  dW_*:  dW += dY.t() @ X          into an f32 buffer: torch.addmm(..., out_dtype=torch.float32) when
                                   this PyTorch has it; otherwise bf16 torch.matmul (what autograd does
                                   before AccumulateGrad adds into .grad), marked in the "torch op" column
  sq_8192: A @ B                   8192^3, bf16
Prints a markdown table and "RESULT <label> <median ms> <TFLOP/s>" lines.

Usage: python3 bench/gemm_torch.py [iterations]   (default 50)
"""
import statistics
import sys

import torch

M = 65536
SHAPES = [(384, 1536), (1536, 384), (768, 3072), (1536, 6144)]


def timed(fn, iterations, warmup=10):
    for _ in range(warmup):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iterations)]
    stops = [torch.cuda.Event(enable_timing=True) for _ in range(iterations)]
    for s, e in zip(starts, stops):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, stops))


def randn(*shape):
    return torch.randn(*shape, device="cuda", dtype=torch.bfloat16)


def dw_op(dy, x, acc):
    """The f32-accumulating weight-gradient GEMM, or the closest op this PyTorch offers."""
    try:
        torch.addmm(acc, dy.t(), x, out_dtype=torch.float32)
        return (lambda: torch.addmm(acc, dy.t(), x, out_dtype=torch.float32)), "addmm(out_dtype=f32)"
    except (TypeError, RuntimeError):
        return (lambda: torch.matmul(dy.t(), x)), "matmul bf16 (no out_dtype)"


def rows():
    for k, n in SHAPES:
        shape = f"M{M}_K{k}_N{n}"
        x, w, dy = randn(M, k), randn(n, k), randn(M, n)
        yield f"fwd_{shape}", M, n, k, (lambda x=x, w=w: torch.matmul(x, w.t())), "matmul"
        yield f"dX_{shape}", M, k, n, (lambda dy=dy, w=w: torch.matmul(dy, w)), "matmul"
        acc = torch.full((n, k), 0.5, device="cuda", dtype=torch.float32)
        fn, name = dw_op(dy, x, acc)
        yield f"dW_{shape}", n, k, M, fn, name
        del x, w, dy
    a, b = randn(8192, 8192), randn(8192, 8192)
    yield "sq_8192", 8192, 8192, 8192, (lambda: torch.matmul(a, b)), "matmul"


def main():
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name(0)}, median of {iterations} after warm-up")
    table = [("label", "m", "n", "k", "torch op", "median ms", "TFLOP/s")]
    for label, m, n, k, fn, name in rows():
        ms = timed(fn, iterations)
        tflops = 2.0 * m * n * k / (ms * 1e-3) / 1e12
        print(f"RESULT {label} {ms:.4f} {tflops:.1f}")
        table.append((label, str(m), str(n), str(k), name, f"{ms:.4f}", f"{tflops:.1f}"))
    print()
    print("| " + " | ".join(table[0]) + " |")
    print("|" + "---|" * len(table[0]))
    for r in table[1:]:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
