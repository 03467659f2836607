#!/usr/bin/python3
"""Writes the PyTorch references of tests/parity/head_loss.cpp: the DINO head (the testbed's DINOHead with
the fixes of spec A4: working 'wn', BatchNorm over crops x batch rows) forward and backward, with its centre
update, and the multicrop losses (CE, KL, H_pred, MSE) for teacher logits, labels and 2-D target logits
broadcast to every teacher slot, under every pairing. Run with Debian's python3-torch:
/usr/bin/python3 tests/parity/make_head_fixtures.py

fixtures/head_loss_f64.safetensors and fixtures/head_loss_f32.safetensors hold the same cases in float64 and
float32 (from the same float64 draws). Head case <c>: <c>/x, <c>/dlogits, <c>/proj, <c>/logits, <c>/dx,
<c>/param/<state_dict key> (before the forward), <c>/grad/<parameter>, <c>/buffer_after/<buffer>. Losses:
loss/s [4, 3, 5] (student crops 0..3), loss/t [2, 3, 5] (teacher crops 0, 1), loss/labels, loss/targets
[3, 5]; per <target>_<pairing>: values [CE, KL, H_pred, H_targ, MSE], H_preds [4], H_targs [2] and
grad_<loss> = d(0.5 * loss) / d s. Metadata "head_cases" and "loss" describe them (NaN cmom as null).
"""
import json
import math
import os
import zlib
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_file import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))


# --- the head -----------------------------------------------------------------------------------------------
class RowNormLinear(nn.Linear):
    """nn.Linear whose weight rows are divided by max(||row||, 1e-12) in forward when `wn` is set."""

    def __init__(self, d_in, d_out, bias, wn):
        super().__init__(d_in, d_out, bias=bias)
        self.wn = wn

    def forward(self, x):
        w = self.weight
        if self.wn:
            w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return F.linear(x, w, self.bias)


class FeatureNorm(nn.Module):
    """'fn' = F.normalize(x, dim=-1); 'fnd' divides by the same norm taken out of the graph."""

    def __init__(self, detach):
        super().__init__()
        self.detach = detach

    def forward(self, x):
        n = x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return x / (n.detach() if self.detach else n)


class CropBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over every leading row of [C, B, F] (spec A4)."""

    def forward(self, x):
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class Bottleneck(nn.Module):
    def __init__(self, d_in, mid, k, cfg):
        super().__init__()
        a = cfg.split("/")
        if a[1] == "-":
            mid = d_in
        elif a[4] == "-":
            mid = k
        self.lin1 = RowNormLinear(d_in, mid, a[1] == "lb", a[0] == "wn") if a[1] != "-" else None
        self.fn1 = FeatureNorm(a[2] == "fnd") if a[2] != "-" else None
        self.lin2 = RowNormLinear(mid, k, a[4] == "lb", a[3] == "wn") if a[4] != "-" else None
        self.fn2 = FeatureNorm(a[5] == "fnd") if a[5] != "-" else None

    def forward(self, x):
        for m in (self.lin1, self.fn1, self.lin2, self.fn2):
            if m is not None:
                x = m(x)
        return x


class Head(nn.Module):
    def __init__(self, o):
        super().__init__()
        self.register_buffer("cent", torch.zeros(o["out_dim"]))
        layers, dims = OrderedDict(), [o["embed_dim"]] + o["hid_dims"]
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            sub = OrderedDict(lin=nn.Linear(a, b))
            if o["mlp_bn"]:
                sub["bn"] = CropBatchNorm(b)
            sub["act"] = nn.GELU() if o["act"] == "GELU" else nn.ReLU()
            layers["layer%d" % i] = nn.Sequential(sub)
        self.mlp = nn.Sequential(layers)
        self.last_layer = Bottleneck(dims[-1], o["l2bot_dim"], o["out_dim"], o["l2bot_cfg"])
        self.temp, self.cmom = o["temp"], o["cmom"]

    def forward(self, x, update_cent):
        proj = self.last_layer(self.mlp(x))
        logits = (proj - self.cent) / self.temp
        if update_cent and not math.isnan(self.cmom):
            self.cent = self.cent * self.cmom + proj.detach().mean(dim=(0, 1)) * (1 - self.cmom)
        return proj, logits


class Model(nn.Module):
    """Gives the head its "head." prefix in the state_dict."""

    def __init__(self, o):
        super().__init__()
        self.head = Head(o)


def head_case(name, hid_dims, mlp_bn, act, cfg, temp, cmom, update_cent, train):
    return dict(name=name, embed_dim=6, hid_dims=hid_dims, mlp_bn=mlp_bn, act=act, l2bot_dim=4, l2bot_cfg=cfg,
                out_dim=9, temp=temp, cmom=cmom, update_cent=update_cent, train=train, crops=3, batch=4)


HEAD_CASES = [
    head_case("head_default", [7, 5], False, "GELU", "-/lb/fn/wn/l/-", 0.1, 0.9, True, True),
    head_case("head_bn_relu_wn", [7, 5], True, "ReLU", "wn/lb/fnd/wn/lb/fn", 0.5, 0.8, True, True),
    head_case("head_bn_eval_fnd", [7], True, "GELU", "-/l/fn/-/lb/fnd", 0.3, float("nan"), True, False),
    head_case("head_plain_linear", [], False, "GELU", "-/-/-/-/lb/-", 0.04, 0.9, False, True),
]


def randomise(model, gen):
    """Parameters N(0, 0.5^2), the centre N(0, 0.3^2), running means N(0, 0.5^2), running variances U(0.5, 2),
    num_batches_tracked 3."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "num_batches_tracked":
                t.fill_(3)
            elif leaf == "running_var":
                t.copy_(0.5 + 1.5 * torch.rand(t.shape, generator=gen, dtype=t.dtype))
            elif leaf == "cent":
                t.copy_(0.3 * torch.randn(t.shape, generator=gen, dtype=t.dtype))
            else:
                t.copy_(0.5 * torch.randn(t.shape, generator=gen, dtype=t.dtype))


def run_head(c):
    gen = torch.Generator().manual_seed(zlib.crc32(c["name"].encode()))
    ref = Model(c).double()
    randomise(ref, gen)
    x64 = torch.randn(c["crops"], c["batch"], c["embed_dim"], generator=gen, dtype=torch.float64)
    dl64 = torch.randn(c["crops"], c["batch"], c["out_dim"], generator=gen, dtype=torch.float64)
    out = {}
    for dtype in (torch.float64, torch.float32):
        m = Model(c).to(dtype)
        m.load_state_dict(ref.state_dict())
        m.train(c["train"])
        p = c["name"] + "/"
        t = {p + "param/" + k: v.detach().clone() for k, v in m.state_dict().items()}
        x = x64.to(dtype).detach().clone().requires_grad_(True)
        proj, logits = m.head(x, c["update_cent"])
        logits.backward(dl64.to(dtype))
        t[p + "x"], t[p + "dlogits"], t[p + "dx"] = x.detach(), dl64.to(dtype), x.grad
        t[p + "proj"], t[p + "logits"] = proj.detach(), logits.detach()
        for k, v in m.named_parameters():
            t[p + "grad/" + k] = v.grad
        for k, v in m.named_buffers():
            t[p + "buffer_after/" + k] = v.detach().clone()
        out[dtype] = t
    meta = {k: v for k, v in c.items() if k != "name"}
    meta["cmom"] = None if math.isnan(c["cmom"]) else c["cmom"]
    meta["parameters"] = [k for k, _ in ref.named_parameters()]
    meta["buffers"] = [k for k, _ in ref.named_buffers()]
    return out, meta


# --- the losses ---------------------------------------------------------------------------------------------
T_IDX, S_IDX, GRAD_SCALE = [0, 1], [0, 1, 2, 3], 0.5
LOSSES = ["CE", "KL", "H_pred", "MSE"]


def multicrop(s, target, kind, pairing):
    """Spec 6.2 with A4. target: ('teacher', [Ct, B, K]), ('labels', [B]) or ('targets', [B, K])."""
    k = s.shape[-1]
    log_p = F.log_softmax(s, dim=-1)
    h_preds = (log_p.exp() * -log_p).sum(-1)
    what, v = target
    if what == "labels":
        q = F.one_hot(v, k).to(s.dtype).unsqueeze(0).expand(len(T_IDX), -1, -1)
        h_targs = torch.zeros(len(T_IDX), v.shape[0], dtype=s.dtype)
        raw = q
    else:
        logits = v if what == "teacher" else v.unsqueeze(0).expand(len(T_IDX), -1, -1)
        log_q = F.log_softmax(logits, dim=-1)
        q = log_q.exp()
        h_targs = (q * -log_q).sum(-1)
        raw = logits
    ces, kls, mses = [], [], []
    for it, q_i, h_i, r_i in zip(T_IDX, q, h_targs, raw):
        for js, lp_j, s_j in zip(S_IDX, log_p, s):
            if (pairing == "opposite" and it == js) or (pairing == "same" and it != js):
                continue
            ces.append((q_i * -lp_j).sum(-1))
            kls.append(ces[-1] - h_i)
            mses.append(((r_i - s_j) ** 2).mean(-1))
    vals = dict(CE=torch.stack(ces).mean(-1).mean(-1), KL=torch.stack(kls).mean(-1).mean(-1),
                H_pred=h_preds.mean(-1).mean(-1), H_targ=h_targs.mean(-1).mean(-1),
                MSE=torch.stack(mses).mean(-1).mean(-1))
    return vals, h_preds.mean(-1), h_targs.mean(-1), vals[kind]


def run_losses():
    gen = torch.Generator().manual_seed(zlib.crc32(b"multicrop_losses"))
    s64 = 3.0 * torch.randn(len(S_IDX), 3, 5, generator=gen, dtype=torch.float64)
    t64 = 4.0 * torch.randn(len(T_IDX), 3, 5, generator=gen, dtype=torch.float64)
    g64 = 2.0 * torch.randn(3, 5, generator=gen, dtype=torch.float64)
    labels = torch.tensor([4, 0, 2], dtype=torch.int64)
    out = {}
    for dtype in (torch.float64, torch.float32):
        s_in, t_in, g_in = s64.to(dtype), t64.to(dtype), g64.to(dtype)
        t = {"loss/s": s_in, "loss/t": t_in, "loss/targets": g_in, "loss/labels": labels}
        for what, v in (("teacher", t_in), ("labels", labels), ("targets", g_in)):
            for pairing in ("all", "same", "opposite"):
                p = "loss/%s_%s/" % (what, pairing)
                for kind in LOSSES:
                    s = s_in.clone().requires_grad_(True)
                    vals, hp, ht, loss = multicrop(s, (what, v), kind, pairing)
                    (GRAD_SCALE * loss).backward()
                    t[p + "grad_" + kind] = s.grad
                t[p + "values"] = torch.stack([vals[n].detach() for n in ("CE", "KL", "H_pred", "H_targ", "MSE")])
                t[p + "H_preds"], t[p + "H_targs"] = hp.detach(), ht.detach()
        out[dtype] = t
    meta = dict(t_idx=T_IDX, s_idx=S_IDX, grad_scale=GRAD_SCALE, losses=LOSSES,
                targets=["teacher", "labels", "targets"], pairings=["all", "same", "opposite"],
                values=["CE", "KL", "H_pred", "H_targ", "MSE"])
    return out, meta


def main():
    files = {torch.float64: {}, torch.float32: {}}
    head_meta = {}
    for c in HEAD_CASES:
        tensors, meta = run_head(c)
        for dtype in files:
            files[dtype].update(tensors[dtype])
        head_meta[c["name"]] = meta
    tensors, loss_meta = run_losses()
    for dtype in files:
        files[dtype].update(tensors[dtype])
    for dtype, suffix in ((torch.float64, "f64"), (torch.float32, "f32")):
        meta = {"head_cases": json.dumps(head_meta, sort_keys=True), "loss": json.dumps(loss_meta, sort_keys=True),
                "dtype": "F64" if dtype == torch.float64 else "F32",
                "generator": "tests/parity/make_head_fixtures.py", "torch": torch.__version__}
        path = os.path.join(HERE, "fixtures", "head_loss_%s.safetensors" % suffix)
        write_safetensors(path, files[dtype], meta)
        print("%s: %d tensors, %d bytes" % (path, len(files[dtype]), os.path.getsize(path)))


if __name__ == "__main__":
    main()
