#!/usr/bin/python3
"""Writes the references of tests/parity/probe.cpp (the probes of spec §10):
 * lin: nn.Linear(E, C) from a stored init, trained with torch.optim.AdamW(lr 1e-3, betas (0.9, 0.999), eps 1e-8,
   weight_decay 0.01, foreach=False) on F.cross_entropy for 2 epochs over one stored batch order (the last batch
   smaller), then argmax predictions on the valid rows;
 * knn: the k nearest train rows (k = 5 and 20) by squared L2 distance summed in float64, ordered by (distance,
   index), and torch.mode of their labels, which the script checks against an explicit smallest-label vote;
 * std: normalize_data's standardisation (train mean, unbiased std, std < 10 eps -> 1), one column constant.
Run with Debian's python3-torch: /usr/bin/python3 tests/parity/make_probe_fixtures.py

fixtures/probe.safetensors: features and results per precision under f64/ and f32/ (the float32 features are
the float64 ones rounded), integer labels, orders, neighbours and predictions as I64 without prefix. Metadata
"lin", "knn" and "std" hold the sizes and options as JSON.
"""
import json
import os

import torch
import torch.nn.functional as F

from safetensors_file import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
LIN = dict(n_train=100, n_valid=40, embed=16, n_classes=5, batch_size=32, epochs=2, lr=1e-3, beta1=0.9, beta2=0.999,
           eps=1e-8, weight_decay=0.01)
KNN = dict(n_train=200, n_valid=60, embed=8, n_classes=4, ks=[5, 20])
STD = dict(n_train=30, n_valid=10, embed=6, constant_column=2)
PRECISIONS = ((torch.float64, "f64"), (torch.float32, "f32"))


def class_features(gen, labels, embed, spread):
    """Gaussian rows whose mean depends on the label, so that training has something to learn."""
    centres = torch.randn(int(labels.max()) + 1, embed, generator=gen, dtype=torch.float64) * spread
    return centres[labels] + torch.randn(len(labels), embed, generator=gen, dtype=torch.float64)


def linear_case(gen, out):
    n, m, e, c = LIN["n_train"], LIN["n_valid"], LIN["embed"], LIN["n_classes"]
    ytr = torch.randint(0, c, (n,), generator=gen)
    yva = torch.randint(0, c, (m,), generator=gen)
    xtr = class_features(gen, torch.cat([ytr, yva]), e, 1.0)
    xtr, xva = xtr[:n], xtr[n:]
    bound = 1 / e ** 0.5
    w0 = (torch.rand(c, e, generator=gen, dtype=torch.float64) * 2 - 1) * bound
    b0 = (torch.rand(c, generator=gen, dtype=torch.float64) * 2 - 1) * bound
    order = torch.randperm(n, generator=gen)
    out.update({"lin/train_y": ytr, "lin/valid_y": yva, "lin/order": order})
    for dtype, p in PRECISIONS:
        clf = torch.nn.Linear(e, c).to(dtype)
        with torch.no_grad():
            clf.weight.copy_(w0.to(dtype))
            clf.bias.copy_(b0.to(dtype))
        opt = torch.optim.AdamW(clf.parameters(), lr=LIN["lr"], betas=(LIN["beta1"], LIN["beta2"]), eps=LIN["eps"],
                                weight_decay=LIN["weight_decay"], foreach=False)
        x = xtr.to(dtype)
        for _ in range(LIN["epochs"]):
            for s in range(0, n, LIN["batch_size"]):
                idx = order[s:s + LIN["batch_size"]]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(clf(x[idx]), ytr[idx]).backward()
                opt.step()
        with torch.no_grad():
            pred = clf(xva.to(dtype)).argmax(1)
        out.update({p + "/lin/train_x": x, p + "/lin/valid_x": xva.to(dtype), p + "/lin/init_weight": w0.to(dtype),
                    p + "/lin/init_bias": b0.to(dtype), p + "/lin/final_weight": clf.weight.detach().clone(),
                    p + "/lin/final_bias": clf.bias.detach().clone(), p + "/lin/valid_pred": pred})


def smallest_mode(row):
    counts = torch.bincount(row)
    return int(torch.nonzero(counts == counts.max())[0])


def knn_case(gen, out):
    n, m, e, c = KNN["n_train"], KNN["n_valid"], KNN["embed"], KNN["n_classes"]
    ytr = torch.randint(0, c, (n,), generator=gen)
    yva = torch.randint(0, c, (m,), generator=gen)
    feats = class_features(gen, torch.cat([ytr, yva]), e, 0.7)
    out.update({"knn/train_y": ytr, "knn/valid_y": yva})
    for dtype, p in PRECISIONS:
        xtr, xva = feats[:n].to(dtype), feats[n:].to(dtype)
        # Exact distances of the stored values, in float64.
        d = ((xva.double()[:, None, :] - xtr.double()[None, :, :]) ** 2).sum(-1)
        dist, idx = torch.sort(d, dim=1, stable=True)
        # faiss-style ||b||^2 - 2 a.b in the features' precision ranks alike: the sets are not near a tie.
        approx = (xtr * xtr).sum(1)[None, :] - 2 * xva @ xtr.T
        out.update({p + "/knn/train_x": xtr, p + "/knn/valid_x": xva})
        for k in KNN["ks"]:
            assert bool((dist[:, k] - dist[:, k - 1] > 1e-4).all()), "a near tie at the k-th neighbour"
            nb = idx[:, :k]
            fast = approx.topk(k, dim=1, largest=False).indices
            assert torch.equal(torch.sort(fast, 1).values, torch.sort(nb, 1).values)
            votes = ytr[nb]
            pred = votes.mode(dim=1).values
            assert [int(v) for v in pred] == [smallest_mode(r) for r in votes], "torch.mode is not the smallest mode"
            out.update({"%s/knn/k%d/neighbours" % (p, k): nb.contiguous(), "%s/knn/k%d/pred" % (p, k): pred,
                        "%s/knn/k%d/acc" % (p, k): torch.tensor([(pred == yva).double().mean().item()],
                                                                 dtype=torch.float64)})


def std_case(gen, out):
    n, m, e = STD["n_train"], STD["n_valid"], STD["embed"]
    x = torch.randn(n + m, e, generator=gen, dtype=torch.float64) * 3 + torch.arange(e, dtype=torch.float64)
    x[:, STD["constant_column"]] = 1.5
    for dtype, p in PRECISIONS:
        tr, va = x[:n].to(dtype), x[n:].to(dtype)
        mean = tr.mean(0)
        std = tr.std(0)
        std[std < 10 * torch.finfo(dtype).eps] = 1
        out.update({p + "/std/train_x": tr, p + "/std/valid_x": va, p + "/std/mean": mean, p + "/std/std": std,
                    p + "/std/train_out": (tr - mean) / std, p + "/std/valid_out": (va - mean) / std})


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(20240607)
    out = {}
    linear_case(gen, out)
    knn_case(gen, out)
    std_case(gen, out)
    meta = {"lin": json.dumps(LIN, sort_keys=True), "knn": json.dumps(KNN, sort_keys=True),
            "std": json.dumps(STD, sort_keys=True), "generator": "tests/parity/make_probe_fixtures.py",
            "torch": torch.__version__}
    path = os.path.join(HERE, "fixtures", "probe.safetensors")
    write_safetensors(path, out, meta)
    print("%s: %d tensors, %d bytes" % (path, len(out), os.path.getsize(path)))


if __name__ == "__main__":
    main()
