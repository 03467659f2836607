#!/usr/bin/python3
"""Writes the references of tests/parity/feature_stats.cpp: the FeatureTracker and FeatureHistTracker figures of
spec §11, computed with the testbed's torch expressions (dinopl/tracking.py) on small feature matrices, once in
float64 and once on the same values rounded to float32 (torch then computes in float32, as a float run does).
Run with Debian's python3-torch: /usr/bin/python3 tests/parity/make_feature_fixtures.py

fixtures/feature_stats.safetensors, per precision p in {f64, f32} and case c:
  p/c/t_x, p/c/s_x               the inputs [Nt, D], [Ns, D]
  p/c/metric/<name>              each scalar figure as a 1-element float64 tensor, <name> as logged
  p/c/hist/<name>                the value vectors of the histograms, float64
Metadata "cases": {case: {"prefix", "kind", "about"}}.
"""
import json
import os

import torch

from safetensors_file import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
PRECISIONS = ((torch.float64, "f64"), (torch.float32, "f32"))
THRESHOLDS = (0.95, 0.99, 0.999)


def npc(sigma, thr):
    return float(sigma.numel() - torch.sum(thr < torch.cumsum(sigma, dim=0) / sigma.sum()))


def triu(m):
    return m[torch.triu_indices(*m.shape, offset=1).unbind()]


def figures(prefix, kind, t_x, s_x):
    """The testbed's FeatureTracker.step and FeatureHistTracker.step for one output kind."""
    base = "%s/feat/%s/" % (prefix, kind)
    metric, hist = {}, {}
    s_gx = s_x[:t_x.shape[0]]
    for i, x in (("t", t_x), ("s", s_x)):
        n = base + i + "_x."
        metric[n + "mean().mean()"] = x.mean(dim=0).mean()
        metric[n + "mean().std()"] = x.mean(dim=0).std()
        metric[n + "std().mean()"] = x.std(dim=0).mean()
        metric[n + "std().std()"] = x.std(dim=0).std()
        metric[n + "rank()"] = float(torch.linalg.matrix_rank(x))
        sigma = torch.linalg.svdvals(x - x.mean(dim=0))
        for thr in THRESHOLDS:
            metric[n + "nPC(var_explained=%g)" % thr] = npc(sigma, thr)
        corr = torch.corrcoef(x).nan_to_num().reshape(x.shape[0], x.shape[0])
        metric[n + "corr().mean()"] = triu(corr).mean()
        metric[n + "corr().rank()"] = float(torch.linalg.matrix_rank(corr, hermitian=False))
        dist = torch.cdist(x, x).reshape(x.shape[0], x.shape[0])
        metric[n + "pdist().mean()"] = triu(dist).mean()
        hist[n + "mean().hist()"] = x.mean(dim=0)
        hist[n + "std().hist()"] = x.std(dim=0)
        hist[n + "corr().hist()"] = triu(corr)
        hist[n + "pdist().hist()"] = triu(dist)
    l2 = (t_x - s_gx).norm(dim=-1)
    rmse = (t_x - s_gx).square().mean(dim=-1).sqrt()
    cos = (t_x * s_gx).sum(-1) / (t_x.norm(dim=-1) * s_gx.norm(dim=-1))
    metric[base + "l2(t_x,s_x).mean()"] = l2.mean()
    metric[base + "rmse(t_x,s_x).mean()"] = rmse.mean()
    metric[base + "cos(t_x,s_x).mean()"] = cos.mean()
    hist[base + "l2(t_x,s_x).hist()"] = l2
    hist[base + "rmse(t_x,s_x).hist()"] = rmse
    hist[base + "cos(t_x,s_x).hist()"] = cos
    return metric, hist


def check_well_posed(x, name):
    """The counts must not depend on rounding inside torch: the same counts follow from the float64 singular values
    of the same (rounded) values with the run's tolerance, no singular value lies within a factor 10 of that
    tolerance, no cumulative ratio within 1e-5 of a threshold, and constant rows are exactly constant."""
    x64 = x.double()
    eps = torch.finfo(x.dtype).eps
    # torch.corrcoef gives a constant row NaN correlations only if its mean rounds to its value (dino always).
    constant = (x == x[:, :1]).all(dim=1)
    assert bool(((x - x.mean(dim=1, keepdim=True))[constant] == 0).all()), "%s: a constant row's mean rounds" % name
    for m, tol_n in ((x64, max(x.shape)), (torch.corrcoef(x64).nan_to_num(), x.shape[0])):
        s = torch.linalg.svdvals(m)
        tol = s.max() * tol_n * eps
        assert bool(((s > 10 * tol) | (s < tol / 10)).all()), "%s: a singular value near the rank tolerance" % name
    s = torch.linalg.svdvals(x64 - x64.mean(dim=0))
    ratios = torch.cumsum(s, 0) / s.sum()
    for thr in THRESHOLDS:
        assert bool(((ratios - thr).abs() > 1e-5).all()), "%s: a cumulative ratio near %g" % (name, thr)


def make_cases(gen):
    """Inputs in float64: (name, prefix, kind, about, t_x, s_x)."""
    randn = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64)
    cases = []
    # D > Nt, D == Ns; the student's first rows are the teacher's plus noise, the rest unrelated.
    t = randn(24, 40)
    s = torch.cat([t + 0.3 * randn(24, 40), randn(16, 40) * 2 + 0.5])
    cases.append(("wide", "train", "embed", "D > N, Ns > Nt", t, s))
    # D < N (36 rows, over torch.cdist's 25-row switch to its matrix-product path).
    t = randn(36, 16) * torch.linspace(0.2, 3.0, 16, dtype=torch.float64) + 1.0
    s = t + 0.5 * randn(36, 16)
    cases.append(("tall", "valid", "proje", "D < N", t, s))
    # Rank 3 (plus the common offset: rank 4), a constant row (corrcoef NaN -> 0), a duplicate row (distance 0).
    t = randn(24, 3) @ randn(3, 40) + 2.0
    t[5] = 1.5
    s = torch.cat([t * 1.1, randn(12, 2) @ randn(2, 40)])
    s[5] = 1.5  # 1.1 * 1.5 rounds, and torch's row mean of the rounded value need not give it back exactly
    s[30] = s[2]
    cases.append(("lowrank", "train", "logit", "low rank, constant and duplicate rows", t, s))
    # Features with large positive means (ReLU-like) and very unequal scales: centring must not lose digits.
    t = torch.relu(randn(32, 24)) * torch.logspace(-0.5, 0.5, 24, dtype=torch.float64) + 10.0
    s = torch.cat([t + 0.01 * randn(32, 24), torch.relu(randn(8, 24)) + 10.0])
    cases.append(("offset", "valid", "embed", "large common offset, unequal scales", t, s))
    return cases


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(20240611)
    out, meta_cases = {}, {}
    for name, prefix, kind, about, t64, s64 in make_cases(gen):
        meta_cases[name] = {"prefix": prefix, "kind": kind, "about": about}
        for dtype, p in PRECISIONS:
            t, s = t64.to(dtype), s64.to(dtype)
            for which, x in (("t_x", t), ("s_x", s)):
                check_well_posed(x, "%s %s %s" % (p, name, which))
            metric, hist = figures(prefix, kind, t, s)
            out["%s/%s/t_x" % (p, name)] = t
            out["%s/%s/s_x" % (p, name)] = s
            for k, v in metric.items():
                out["%s/%s/metric/%s" % (p, name, k)] = torch.tensor([float(v)], dtype=torch.float64)
            for k, v in hist.items():
                out["%s/%s/hist/%s" % (p, name, k)] = v.double()
    meta = {"cases": json.dumps(meta_cases, sort_keys=True), "generator": "tests/parity/make_feature_fixtures.py",
            "torch": torch.__version__}
    path = os.path.join(HERE, "fixtures", "feature_stats.safetensors")
    write_safetensors(path, out, meta)
    print("%s: %d tensors, %d bytes" % (path, len(out), os.path.getsize(path)))


if __name__ == "__main__":
    main()
