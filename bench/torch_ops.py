#!/usr/bin/python3
"""PyTorch peers of bench/gemm_bench.cpp and bench/conv_bench.cpp (torch.matmul; F.conv2d forward+backward,
and forward alone under no_grad), and the summary table of bench/run_ops.sh. Debian's torch 1.13, 2 threads.

  torch_ops.py [--only gemm|conv] [--repeats R] [--min_time S]   -> JSON lines {op, shape, seconds,
                                                                     gflops, samples}
  torch_ops.py summarize DINO.json... --torch TORCH.jsonl...      -> markdown table on stdout
seconds is the median of the samples (mean seconds per call over one repeat). The summary pools the
samples of all the files given: GFLOP/s at the median time, cv = std / mean.
"""
import argparse
import json
import re
import statistics
import sys
import time

THREADS = 2

# Square GEMMs; shape name = <op>_<n> as in gemm_bench's BM_gemm/<impl>/<op>/<n>.
GEMMS = [("nn", 256), ("nn", 1024), ("nn", 2048), ("tn", 1024), ("nt", 1024)]

# name: (N, Cin, Cout, k, stride, pad, H, bias). ResNet-20 on 32x32 inputs (batch 256, no conv bias) and a
# ConvNet-32 layer on 28x28 crops (batch 64, "same" padding). Names shared with conv_bench.cpp.
CONVS = {
    "r20_stem": (256, 3, 16, 3, 1, 1, 32, False),
    "r20_l1": (256, 16, 16, 3, 1, 1, 32, False),
    "r20_l2_down": (256, 16, 32, 3, 2, 1, 32, False),
    "r20_l2": (256, 32, 32, 3, 1, 1, 16, False),
    "r20_l3_down": (256, 32, 64, 3, 2, 1, 16, False),
    "r20_l3": (256, 64, 64, 3, 1, 1, 8, False),
    "r20_l2_proj": (256, 16, 32, 1, 2, 0, 32, False),
    "r20_l3_proj": (256, 32, 64, 1, 2, 0, 16, False),
    "c32_28": (64, 32, 32, 3, 1, 1, 28, True),
}


def gemm_flops(n):
    return 2.0 * n**3


def conv_out(h, k, stride, pad):
    return (h + 2 * pad - k) // stride + 1


def conv_flops(name):
    """Forward + backward (dx, dweight) = 3 x forward; forward = 2 x multiply-adds."""
    n, cin, cout, k, stride, pad, h, _ = CONVS[name]
    ho = conv_out(h, k, stride, pad)
    return 3.0 * 2.0 * n * cout * ho * ho * cin * k * k


def time_cases(cases, repeats, min_time):
    """Per case, `repeats` samples of the mean seconds per call, each lasting at least min_time. Repeats go
    round all the cases in turn, so a drift of the machine hits every case alike."""
    iters = []
    for _, _, fn, _ in cases:
        fn()
        fn()  # warm-up: allocator caches, oneDNN primitive creation
        t0 = time.perf_counter()
        fn()
        iters.append(max(1, int(min_time / max(time.perf_counter() - t0, 1e-6))))
    samples = [[] for _ in cases]
    for _ in range(repeats):
        for (_, _, fn, _), k, out in zip(cases, iters, samples):
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            out.append((time.perf_counter() - t0) / k)
    return samples


def run_torch(args):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(THREADS)
    g = torch.Generator().manual_seed(0)
    cases = []  # (op, shape, callable, flops)

    if args.only in (None, "gemm"):
        for op, n in GEMMS:
            a = torch.rand(n, n, generator=g) * 2 - 1
            b = torch.rand(n, n, generator=g) * 2 - 1
            c = torch.empty(n, n)
            # Transposed views, not copies: matmul passes them to sgemm with the transpose flag.
            lhs = a.t() if op == "tn" else a
            rhs = b.t() if op == "nt" else b

            def step(lhs=lhs, rhs=rhs, c=c):
                torch.matmul(lhs, rhs, out=c)

            cases.append(("gemm", f"{op}_{n}", step, gemm_flops(n)))

    if args.only in (None, "conv"):
        for name, (n, cin, cout, k, stride, pad, h, bias) in CONVS.items():
            x = (torch.rand(n, cin, h, h, generator=g) * 2 - 1).requires_grad_()
            w = ((torch.rand(cout, cin, k, k, generator=g) * 2 - 1) / (cin * k * k) ** 0.5).requires_grad_()
            bb = torch.zeros(cout, requires_grad=True) if bias else None
            ho = conv_out(h, k, stride, pad)
            dy = torch.rand(n, cout, ho, ho, generator=g) * 2 - 1
            params = [p for p in (x, w, bb) if p is not None]

            def step(x=x, w=w, bb=bb, dy=dy, stride=stride, pad=pad, params=params):
                for p in params:
                    p.grad = None  # overwrite, as our backward does, rather than accumulate
                F.conv2d(x, w, bb, stride=stride, padding=pad).backward(dy)

            cases.append(("conv_fwd_bwd", name, step, conv_flops(name)))

            def fwd(x=x, w=w, bb=bb, stride=stride, pad=pad):
                with torch.no_grad():
                    F.conv2d(x, w, bb, stride=stride, padding=pad)

            cases.append(("conv_fwd", name, fwd, conv_flops(name) / 3))

    for (op, shape, _, flops), samples in zip(cases, time_cases(cases, args.repeats, args.min_time)):
        seconds = statistics.median(samples)
        print(json.dumps({"op": op, "shape": shape, "seconds": seconds, "gflops": flops / seconds * 1e-9,
                          "samples": samples}))


# --- summary -------------------------------------------------------------------------------------------------


# Suffixes Google Benchmark appends to a registered name (UseRealTime, MinTime, Iterations, ...).
GBENCH_SUFFIX = re.compile(r"/(real_time|manual_time|process_time|(min_time|min_warmup_time|iterations|repeats|threads):[^/]*)")


def load_gbench(paths):
    """{registered benchmark name: [seconds per iteration, one per repetition]}, pooled over Google Benchmark
    JSON files (aggregates are ignored: they are recomputed over all the files)."""
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    out = {}
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        for b in doc.get("benchmarks", []):
            if b.get("run_type", "iteration") == "iteration" and not b.get("error_occurred"):
                name = GBENCH_SUFFIX.sub("", b.get("run_name", b["name"]))
                out.setdefault(name, []).append(b["real_time"] * unit[b.get("time_unit", "ns")])
    return out


def load_torch(paths):
    """{(op, shape): [seconds per call]}, pooled over torch_ops.py outputs."""
    out = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    out.setdefault((r["op"], r["shape"]), []).extend(r.get("samples", [r["seconds"]]))
    return out


def stats(samples, flops):
    """(GFLOP/s at the median time, coefficient of variation of the times), or Nones without samples."""
    if not samples:
        return None, None
    cv = statistics.pstdev(samples) / statistics.mean(samples) if len(samples) > 1 else None
    return flops / statistics.median(samples) * 1e-9, cv


def fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def summarize(args):
    dino = load_gbench(args.dino)
    torch_rows = load_torch(args.torch or [])

    def rate(name, flops):
        return stats(dino.get(name), flops)

    def ratio(a, b):
        return None if a is None or b is None else a / b

    def spread(a, b):
        return "-" if a is None and b is None else f"{fmt(a and 100 * a, '.0f')} / {fmt(b and 100 * b, '.0f')}"

    def row(label, shape, ours, theirs, pct="", eigen=""):
        print(f"| {label} | {shape} | {fmt(ours[0])} | {fmt(theirs[0])} | {fmt(ratio(ours[0], theirs[0]), '.2f')} | "
              f"{pct} | {eigen} | {spread(ours[1], theirs[1])} |")

    print("| op | shape | dino GFLOP/s | PyTorch GFLOP/s | dino / PyTorch | dino % of OpenBLAS sgemm | "
          "Eigen GFLOP/s | cv % dino / PyTorch |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for op, n in GEMMS:
        shape, flops = f"{op}_{n}", gemm_flops(n)
        ours = rate(f"BM_gemm/dino/{op}/{n}", flops)
        blas = rate(f"BM_gemm/openblas/{op}/{n}", flops)[0]
        eigen = rate(f"BM_gemm/eigen/{op}/{n}", flops)[0]
        pct = ratio(ours[0], blas)
        row("gemm", shape, ours, stats(torch_rows.get(("gemm", shape)), flops),
            fmt(pct and 100 * pct, ".0f"), fmt(eigen))
    for op, label, share in (("conv_fwd_bwd", "conv fwd+bwd", 1), ("conv_fwd", "conv fwd", 1 / 3)):
        for name in CONVS:
            # GFLOP/s from the median time and the shared FLOP count, whatever counter conv_bench reports.
            flops = share * conv_flops(name)
            row(label, name, rate(f"BM_{op}/{name}", flops), stats(torch_rows.get((op, name)), flops))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "summarize":
        p = argparse.ArgumentParser(prog="torch_ops.py summarize")
        p.add_argument("dino", nargs="*", help="Google Benchmark JSON outputs (--benchmark_format=json)")
        p.add_argument("--torch", nargs="+", help="JSON lines written by torch_ops.py")
        summarize(p.parse_args(sys.argv[2:]))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["gemm", "conv"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min_time", type=float, default=0.5, help="seconds per repeat")
    run_torch(p.parse_args())


if __name__ == "__main__":
    main()
