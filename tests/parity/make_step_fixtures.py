#!/usr/bin/python3
"""Whole DINO training steps in plain PyTorch with Part A's decisions, written as fixtures for dino_replay.

Run with Debian's python3-torch (1.13; needs numpy and torchvision, nothing else):

    /usr/bin/python3 tests/parity/make_step_fixtures.py                 # all default cases
    /usr/bin/python3 tests/parity/make_step_fixtures.py --large         # also the large vgg11_bn case
    /usr/bin/python3 tests/parity/make_step_fixtures.py --cases c01_convnet16_2_defaults c07_adam
    /usr/bin/python3 tests/parity/make_step_fixtures.py check-load OUT.safetensors tests/parity/fixtures/steps/<case>
    /usr/bin/python3 tests/parity/make_step_fixtures.py selftest        # schedules (spec §8.4), step semantics

Per case, fixtures/steps/<case>/ holds
  cfg.json                   the CLI keys of the run (spec §1.2 names) plus steps_per_epoch
  init.safetensors           student.<state_dict key>, teacher.<state_dict key> (float32: every value is drawn
                             float32-representable, so the float and double runs start from the same state;
                             num_batches_tracked int64, 0-dim)
  batches.safetensors        step<k>/crop<i> float32 [B, 3, S, S]; step<k>/target (int64 [B] or float32 [B, n])
  expected_f64.safetensors   the final state after K micro-batches computed in float64, plus loss [K] and the
  expected_f32.safetensors   defined metrics (CE, KL, H_pred for CE/KL/H_pred; MSE for MSE) [K], float64
                             (the f32 file holds the float32 run's state as float32, its metrics as float64)

The step (spec §9.3 with Part A): schedule values at optimizer step g = k // batchaccum (rounded to the run's
dtype), both nets train(), teacher.eval() if t_eval; teacher forward on the teacher crops (centre updated after
use), student forward on all crops (student centre updated if s_cmom is not NaN), loss, backward(loss /
batchaccum); at the last micro-batch of a window: lin2 grads dropped while epoch < wn_freeze_epochs, global-norm
clipping, optimizer step (lr = lr_sched(g) * bs_train * batchaccum / 256; weights get wd_sched(g), biases and
1-D parameters wd 0), grads set to None; after every micro-batch the teacher EMA (ema mode; BN running stats too
with t_bn_mode from_student); after the last optimizer step of an epoch, the prev_epoch copy when due.
"""
import argparse
import ast
import copy
import json
import math
import os
import struct
import sys
import warnings
import zlib
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_file import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_ROOT = os.path.join(HERE, "fixtures", "steps")

###################################################################################################################
# safetensors (our own minimal reader and, in safetensors_file.py, writer: the `safetensors` package is not a
# dependency)
###################################################################################################################

_ST_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "I64": np.dtype("<i8"), "I32": np.dtype("<i4")}


def st_write(path, tensors, metadata=None):
    """tensors: {name: numpy array or torch tensor}; __metadata__ {"format": "pt", ...} with the values as strings."""
    meta = {"format": "pt"}
    meta.update(metadata or {})
    write_safetensors(path, tensors, {k: str(v) for k, v in meta.items()})


def st_read(path):
    """Returns ({name: torch tensor}, metadata). Accepts F64/F32/I64/I32."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    out = {}
    base = 8 + n
    for name, h in header.items():
        if h["dtype"] not in _ST_DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {h['dtype']}")
        b, e = h["data_offsets"]
        a = np.frombuffer(raw[base + b:base + e], dtype=_ST_DTYPES[h["dtype"]]).reshape(h["shape"]).copy()
        out[name] = torch.from_numpy(a)
    return out, meta


###################################################################################################################
# Schedules (spec §8): expression -> node, node.prep(n_steps, n_epochs, spe) -> list of Python floats
###################################################################################################################

_NAN_NAMES = {"nan", "NaN", "none", "None"}
_SCHED_ARITY = {"ConstSched": (1, 1), "LinSched": (2, 2), "CosSched": (2, 2), "ExpSched": (2, 2),
                "CatSched": (3, 3), "LinWarmup": (3, 3), "CosWarmup": (3, 3), "ExpWarmup": (3, 3),
                "MultiStep": (2, 1 << 30)}


class Sched:
    """A schedule node: kind (constructor name) and args (ints, floats or Sched), as the testbed's ast parse."""

    def __init__(self, kind, args):
        lo, hi = _SCHED_ARITY[kind]
        if not lo <= len(args) <= hi:
            raise ValueError(f"{kind} takes {lo}..{hi} arguments, got {len(args)}")
        self.kind, self.args = kind, list(args)

    def __repr__(self):
        def r(a):
            return repr(a) if not isinstance(a, float) or not math.isnan(a) else "nan"
        return f"{self.kind}({', '.join(r(a) for a in self.args)})"


def _sched_number(node):
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            raise ValueError("booleans are not schedule values")
        if isinstance(v, (int, float)):
            return v
        if v is None or (isinstance(v, str) and v in _NAN_NAMES):
            return float("nan")
    if isinstance(node, ast.Name) and node.id in _NAN_NAMES:
        return float("nan")
    raise ValueError(f"unsupported schedule argument {ast.dump(node)}")


def _sched_call(node):
    if not isinstance(node.func, ast.Name) or node.func.id not in _SCHED_ARITY or node.keywords:
        raise ValueError(f"unsupported schedule call {ast.dump(node)}")
    args = [_sched_call(a) if isinstance(a, ast.Call) else _sched_number(a) for a in node.args]
    return Sched(node.func.id, args)


def parse_schedule(v):
    """A cfg value (JSON number, null or expression string) -> Sched. Top-level numbers become ConstSched(float)."""
    if v is None:
        return Sched("ConstSched", [float("nan")])
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return Sched("ConstSched", [float(v)])
    tree = ast.parse(v.strip(), mode="eval").body
    if isinstance(tree, ast.Call):
        return _sched_call(tree)
    return Sched("ConstSched", [float(_sched_number(tree))])


def _linspace(lo, hi, n):
    """torch.linspace's rule: first half counts up from lo, second half down from hi; n = 1 -> [lo]."""
    if n <= 0:
        return []
    if n == 1:
        return [lo]
    step = (hi - lo) / (n - 1)
    half = n // 2
    return [lo + step * i if i < half else hi - step * (n - 1 - i) for i in range(n)]


def _as_sched(a):
    return a if isinstance(a, Sched) else Sched("ConstSched", [float(a)])


def sched_prep(s, n_steps, n_epochs, spe):
    """Schedule.prep of the testbed (spec §8.2/§8.3): the list of values, one per optimizer step."""
    if n_epochs < 0 and n_steps < 0:
        raise ValueError("prep needs n_steps or n_epochs")
    elif n_epochs < 0 or n_epochs * spe < n_steps:
        n_epochs = -(-n_steps // spe)
    elif n_steps < 0 or n_steps < n_epochs * spe:
        n_steps = n_epochs * spe
    n, a = n_steps, s.args
    if s.kind == "ConstSched":
        return [float(a[0])] * n
    if s.kind in ("LinSched", "CosSched", "ExpSched"):
        lo, hi = float(a[0]), float(a[1])
        if s.kind == "LinSched":
            ys = [lo + (hi - lo) * x for x in _linspace(0.0, 1.0, n)]
        elif s.kind == "CosSched":
            ys = [lo + (hi - lo) * (0.5 + math.cos(x) / 2) for x in _linspace(-math.pi, 0.0, n)]
        else:
            if not (lo > 0 and hi > 0):
                raise ValueError("ExpSched needs positive end points")
            ys = [math.exp(x) for x in _linspace(math.log(lo), math.log(hi), n)]
        if math.isfinite(lo) and math.isfinite(hi):  # end points exact (spec §8.3)
            if n >= 1:
                ys[0] = lo
            if n >= 2:
                ys[-1] = hi
        return ys
    if s.kind in ("CatSched", "LinWarmup", "CosWarmup", "ExpWarmup"):
        if s.kind == "CatSched":
            left, right, where = _as_sched(a[0]), _as_sched(a[1]), a[2]
        else:
            base = {"LinWarmup": "LinSched", "CosWarmup": "CosSched", "ExpWarmup": "ExpSched"}[s.kind]
            left, right, where = Sched(base, [a[0], a[1]]), Sched("ConstSched", [float(a[1])]), a[2]
        ys = []
        if isinstance(where, int):  # epochs
            if where > 0:
                ys += sched_prep(left, -1, where, spe)
            if n_epochs - where > 0:
                ys += sched_prep(right, -1, n_epochs - where, spe)
        else:  # fraction of the steps, Python's round (half to even)
            n_l = round(where * n_steps)
            if n_l > 0:
                ys += sched_prep(left, n_l, -1, spe)
            if n_steps - n_l > 0:
                ys += sched_prep(right, n_steps - n_l, -1, spe)
        return ys
    if s.kind == "MultiStep":
        ys = [float("nan")] * n
        value, gamma, last = float(a[0]), float(a[1]), 0
        for ms in a[2:]:
            ms = ms * spe if isinstance(ms, int) else int(ms * n_steps)
            lo_, hi_ = min(max(last, 0), n), min(max(ms, 0), n)
            for i in range(lo_, hi_):
                ys[i] = value
            value *= gamma
            last = ms
        for i in range(min(max(last, 0), n), n):
            ys[i] = value
        return ys
    raise ValueError(s.kind)


def schedule_selftest():
    """The worked examples of spec §8.4."""
    def close(got, want, tol=5e-6):
        return len(got) == len(want) and all(abs(g - w) <= tol * max(1.0, abs(w)) for g, w in zip(got, want))
    cos_tail = [5e-4, 4.81008e-4, 4.26923e-4, 3.45980e-4, 2.5050e-4, 1.55020e-4, 7.40769e-5, 1.99921e-5, 1e-6]
    table = [
        ("ConstSched(0.9)", (-1, 2, 2), [0.9] * 4),
        ("LinSched(0, 1)", (-1, 1, 5), [0, .25, .5, .75, 1]),
        ("CosSched(1, 0)", (-1, 1, 5), [1, .853553, .5, .146447, 0]),
        ("CosSched(0.996, 1)", (-1, 1, 5), [.996, .996586, .998, .999414, 1]),
        ("ExpSched(1, 0.01)", (-1, 1, 3), [1, 0.1, 0.01]),
        ("CatSched(LinSched(0, 5e-4), CosSched(5e-4, 1e-6), 2)", (-1, 5, 3),
         [0, 1e-4, 2e-4, 3e-4, 4e-4, 5e-4] + cos_tail),
        ("CatSched(LinSched(0, 1), 1, 0.3)", (-1, 5, 3), [0, 1 / 3, 2 / 3, 1] + [1.0] * 11),
        ("CatSched(LinSched(0, 1), 1, 0.5)", (5, -1, 1), [0, 1, 1, 1, 1]),
        ("LinWarmup(0.04, 0.07, 2)", (-1, 5, 3), [.04, .046, .052, .058, .064, .07] + [.07] * 9),
        ("LinWarmup(0.04, 0.04, 0)", (-1, 2, 3), [0.04] * 6),
        ("CosWarmup(0, 1, 1)", (-1, 3, 3), [0, .5, 1] + [1] * 6),
        ("ExpWarmup(1e-3, 1e-1, 1)", (-1, 2, 3), [.001, .01, .1] + [.1] * 3),
        ("MultiStep(0.1, 0.1, 2, 0.8)", (-1, 5, 3), [0.1] * 6 + [0.01] * 6 + [0.001] * 3),
        ("LinSched(0, 1)", (7, 5, 3), [i / 14 for i in range(15)]),
        ("LinSched(0, 1)", (20, 2, 3), [i / 19 for i in range(20)]),
        ("LinSched(0, 1)", (7, -1, 3), [i / 6 for i in range(7)]),
        ("CatSched(LinSched(0.0, 0.0005), CosSched(0.0005, 1e-06), 10)", (-1, 3, 2),
         [5e-4 * i / 19 for i in range(20)]),
    ]
    bad = 0
    for expr, (ns, ne, spe), want in table:
        got = sched_prep(parse_schedule(expr), ns, ne, spe)
        if not close(got, want):
            bad += 1
            print(f"schedule selftest FAILED: {expr} prep{(ns, ne, spe)}\n  got  {got}\n  want {want}")
    # The CIFAR10 default of spec §8.4: 78,200 values, ys[1] = 6.3947e-8, ys[7819] = ys[7820] = 5e-4.
    ys = sched_prep(parse_schedule("CatSched(LinSched(0.0, 0.0005), CosSched(0.0005, 1e-06), 10)"), -1, 100, 782)
    if not (len(ys) == 78200 and ys[0] == 0 and abs(ys[1] - 6.3947e-8) < 1e-11 and ys[7819] == 5e-4
            and ys[7820] == 5e-4 and abs(ys[43010] - 2.505e-4) < 1e-7 and ys[78199] == 1e-6):
        bad += 1
        print("schedule selftest FAILED: default lr on CIFAR10")
    if bad:
        raise SystemExit(f"{bad} schedule checks failed")
    return len(table) + 1


###################################################################################################################
# Multi-crop presets (spec §2.3): crop sizes and teacher flags; S_idx = all crops
###################################################################################################################

def mc_spec(name):
    sizes = {"128": ("128", "96"), "64": ("64", "64"), "32": ("32", "32"), "28": ("28", "28")}
    for g, (gs, ls) in sizes.items():
        if name == f"2x{gs}+4x{ls}":
            return [int(gs)] * 2 + [int(ls)] * 4, [True, True, False, False, False, False]
        if name == f"2x{gs}":
            return [int(gs)] * 2, [True, True]
        if name == f"1x{gs}":
            return [int(gs)], [True]
    raise ValueError(f"unknown --mc {name!r}")


###################################################################################################################
# Model (names exactly as the testbed's DINO state_dict: enc.*, head.*)
###################################################################################################################

class WeightNormLinear(nn.Module):
    """Linear whose weight rows are divided by max(||row||, 1e-12) when wn is set (Part A4: wn works, gradient
    through the division). The parameter keeps the name `weight`. In the cross-check path the weight norm is
    computed with torch._weight_norm(v, g=1) instead."""
    impl = "torch"

    def __init__(self, d_in, d_out, bias, wn):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        if bias:
            self.bias = nn.Parameter(torch.empty(d_out))
        else:
            self.register_parameter("bias", None)
        self.wn = wn

    def forward(self, x):
        w = self.weight
        if self.wn:
            if WeightNormLinear.impl == "torch":
                w = F.normalize(w, p=2.0, dim=-1)
            else:
                w = torch._weight_norm(w, torch.ones(w.shape[0], 1, dtype=w.dtype), 0)
        return F.linear(x, w, self.bias)


class FeatureNorm(nn.Module):
    """'fn': x / max(||x||, 1e-12) along the last dim; 'fnd': the same value with the denominator detached."""

    def __init__(self, detach):
        super().__init__()
        self.detach = detach

    def forward(self, x):
        d = x.norm(p=2, dim=-1, keepdim=True).clamp_min(1e-12)
        return x / (d.detach() if self.detach else d)


class L2Bottleneck(nn.Module):
    def __init__(self, in_dim, mid_dim, out_dim, cfg):
        super().__init__()
        c = cfg.split("/")
        ok = len(c) == 6 and all(c[3 * i] in ("wn", "-") and c[3 * i + 1] in ("l", "lb", "-")
                                 and c[3 * i + 2] in ("fn", "fnd", "-") for i in (0, 1))
        if not ok:
            raise ValueError(f"bad l2bot_cfg {cfg!r}")
        if c[1] == "-":
            mid_dim = in_dim
        elif c[4] == "-":
            mid_dim = out_dim
        self.lin1 = WeightNormLinear(in_dim, mid_dim, c[1] == "lb", c[0] == "wn") if c[1] != "-" else None
        self.fn1 = FeatureNorm(c[2] == "fnd") if c[2] != "-" else nn.Identity()
        self.lin2 = WeightNormLinear(mid_dim, out_dim, c[4] == "lb", c[3] == "wn") if c[4] != "-" else None
        self.fn2 = FeatureNorm(c[5] == "fnd") if c[5] != "-" else nn.Identity()

    def forward(self, x):
        if self.lin1 is not None:
            x = self.lin1(x)
        x = self.fn1(x)
        if self.lin2 is not None:
            x = self.lin2(x)
        return self.fn2(x)


class RowsBatchNorm1d(nn.BatchNorm1d):
    """--mlp_bn (Part A4): BatchNorm1d over all crop x batch rows per feature, [C, B, o] -> [C*B, o]."""

    def forward(self, x):
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class DINOHead(nn.Module):
    def __init__(self, embed_dim, out_dim, hid_dims, l2bot_dim, l2bot_cfg, mlp_bn, act):
        super().__init__()
        dims, layers = [embed_dim] + list(hid_dims), OrderedDict()
        for k, (i, o) in enumerate(zip(dims[:-1], dims[1:])):
            sub = OrderedDict(lin=nn.Linear(i, o))
            if mlp_bn:
                sub["bn"] = RowsBatchNorm1d(o)
            sub["act"] = {"GELU": nn.GELU, "ReLU": nn.ReLU}[act]()
            layers[f"layer{k}"] = nn.Sequential(sub)
        self.mlp = nn.Sequential(layers)
        self.last_layer = L2Bottleneck(dims[-1], l2bot_dim, out_dim, l2bot_cfg)
        self.register_buffer("cent", torch.zeros(out_dim))

    def forward(self, x, temp=None, cmom=None, update_cent=False, impl="torch"):
        proj = self.last_layer(self.mlp(x))
        if temp is None:
            return proj, proj - self.cent
        logits = (proj - self.cent) / temp
        if update_cent and not math.isnan(float(cmom)):
            with torch.no_grad():
                batch_cent = proj.detach().mean(dim=(0, 1))
                if impl == "torch":
                    self.cent.copy_(self.cent * cmom + batch_cent * (1 - cmom))
                else:
                    self.cent.copy_(torch.lerp(batch_cent, self.cent, cmom))
        return proj, logits


NORMS = {
    "BatchNorm": lambda c: nn.BatchNorm2d(c),
    "InstanceNorm": lambda c: nn.GroupNorm(c, c),
    "GroupNorm8": lambda c: nn.GroupNorm(c // 8, c),
    "LayerNorm": lambda c: nn.GroupNorm(1, c),
    "Identity": lambda c: nn.Identity(),
}


class ConvNet(nn.Module):
    """README-era convnet_W_D[e] (spec §3.3): conv1 -> ReLU; block = [MaxPool if D > 1 or tail] + (D-1) x
    [conv, norm, ReLU] + [tail conv]; AdaptiveAvgPool2d(2) -> flatten, E = 4 W."""

    def __init__(self, width, depth, tail, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding="same")
        self.relu = nn.ReLU()
        mods = [nn.MaxPool2d(2, 2)] if (depth > 1 or tail) else []
        for _ in range(depth - 1):
            mods += [nn.Conv2d(width, width, 3, padding="same"), NORMS[norm](width), nn.ReLU()]
        if tail:
            mods.append(nn.Conv2d(width, width, 3, padding="same"))
        self.block = nn.Sequential(*mods)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.embed_dim = 4 * width

    def forward(self, x):
        return torch.flatten(self.avgpool(self.block(self.relu(self.conv1(x)))), 1)


class ResNet(nn.Module):
    """torchvision 0.14 ResNet with BasicBlocks under torchvision's names, 3 or 4 stages, fc/classifier removed
    (avgpool kept, then flatten). tiny_input: conv 3x3 s1 stem, no max-pool."""

    def __init__(self, layers, inplanes, tiny_input, norm):
        super().__init__()
        from torchvision.models.resnet import BasicBlock, conv1x1
        norm_layer = NORMS[norm]
        if tiny_input:
            self.conv1 = nn.Conv2d(3, inplanes, 3, 1, 1, bias=False)
            self.bn1 = norm_layer(inplanes)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, inplanes, 7, 2, 3, bias=False)
            self.bn1 = norm_layer(inplanes)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = inplanes
        for k, n_blocks in enumerate(layers):
            planes, stride = inplanes * 2 ** k, 1 if k == 0 else 2
            down = None
            if stride != 1 or cin != planes:
                down = nn.Sequential(conv1x1(cin, planes, stride), norm_layer(planes))
            blocks = [BasicBlock(cin, planes, stride, down, norm_layer=norm_layer)]
            blocks += [BasicBlock(planes, planes, norm_layer=norm_layer) for _ in range(n_blocks - 1)]
            setattr(self, f"layer{k + 1}", nn.Sequential(*blocks))
            cin = planes
        self.n_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.embed_dim = cin

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for k in range(self.n_stages):
            x = getattr(self, f"layer{k + 1}")(x)
        return torch.flatten(self.avgpool(x), 1)


VGG_CFGS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


class VGG(nn.Module):
    """torchvision 0.14 VGG feature extractor (features.<i> indices as torchvision's), output flattened,
    E = 512 (S/32)^2."""

    def __init__(self, name, norm, img_size):
        super().__init__()
        from torchvision.models.vgg import cfgs
        if img_size < 32:
            raise ValueError("VGG needs crops of at least 32 pixels")
        layers, c = [], 3
        for v in cfgs[VGG_CFGS[name]]:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(nn.Conv2d(c, v, kernel_size=3, padding=1))
                if norm is not None:
                    layers.append(NORMS[norm](v))
                layers.append(nn.ReLU(inplace=True))
                c = v
        self.features = nn.Sequential(*layers)
        self.embed_dim = 512 * (img_size // 32) ** 2

    def forward(self, x):
        return torch.flatten(self.features(x), 1)


def make_encoder(cfg, img_size):
    name, norm, tiny = cfg["enc"], cfg["enc_norm_layer"], bool(cfg["tiny_input"])
    name = {"ConvNet": "convnet_16_2", "ResNet": "resnet18", "VGG": "vgg11", "Flatten": "flatten"}.get(name, name)
    if name.startswith("convnet_"):
        _, w, d = name.split("_")
        return ConvNet(int(w), int(d.rstrip("e")), d.endswith("e"), norm or "BatchNorm")
    resnets = {"resnet18": ([2, 2, 2, 2], 64, tiny), "resnet34": ([3, 4, 6, 3], 64, tiny),
               "resnet20": ([3, 3, 3], 16, True), "resnet56": ([9, 9, 9], 16, True)}
    if name in resnets:
        layers, planes, t = resnets[name]
        return ResNet(layers, planes, t, norm or "BatchNorm")
    if name.startswith("vgg"):
        base = name[:-3] if name.endswith("_bn") else name
        return VGG(base, norm or ("BatchNorm" if name.endswith("_bn") else None), img_size)
    raise ValueError(f"unsupported encoder {name!r}")


class DINOModel(nn.Module):
    def __init__(self, cfg, img_size):
        super().__init__()
        self.enc = make_encoder(cfg, img_size)
        e = self.enc.embed_dim
        hid = [h if h > 0 else e for h in cfg["hid_dims"]]
        l2bot = cfg["l2bot_dim"] if cfg["l2bot_dim"] > 0 else e
        out = cfg["out_dim"] if cfg["out_dim"] > 0 else e
        self.head = DINOHead(e, out, hid, l2bot, cfg["l2bot_cfg"], bool(cfg["mlp_bn"]), cfg["mlp_act"])
        self.out_dim = out

    def forward(self, crops, **kw):
        emb = torch.stack([self.enc(c) for c in crops])  # each crop through the encoder separately
        return self.head(emb, **kw)


###################################################################################################################
# Configuration
###################################################################################################################

# The CLI defaults (spec §17) of every key the replay reads; a case overrides some of them. All of these are
# written to cfg.json, in this order, plus steps_per_epoch.
DEFAULTS = OrderedDict([
    ("enc", "resnet18"), ("enc_norm_layer", None), ("tiny_input", False),
    ("mc", "2x128+4x96"), ("bs_train", 64), ("batchaccum", 1),
    ("n_epochs", 100), ("n_steps", -1),
    ("out_dim", 65536), ("hid_dims", [2048, 2048]), ("mlp_act", "GELU"), ("mlp_bn", False),
    ("l2bot_dim", 256), ("l2bot_cfg", "-/lb/fn/wn/l/-"),
    ("s_mode", "distillation"), ("t_mode", "ema"), ("t_update_every", 1), ("t_bn_mode", "from_data"),
    ("t_eval", False),
    ("t_mom", "CosSched(0.996, 1.0)"), ("t_cmom", "ConstSched(0.9)"), ("s_cmom", "ConstSched(nan)"),
    ("t_temp", "LinWarmup(0.04, 0.04, 0)"), ("s_temp", "ConstSched(0.1)"),
    ("loss", "CE"), ("loss_pairing", "opposite"),
    ("opt", "adamw"), ("opt_lr", "CatSched(LinSched(0.0, 0.0005), CosSched(0.0005, 1e-06), 10)"),
    ("opt_wd", "CosSched(0.04, 0.4)"), ("opt_mom", 0.9), ("opt_beta1", 0.9), ("opt_beta2", 0.999),
    ("clip_grad", 3.0), ("wn_freeze_epochs", 1),
])
SCHEDULED = ("t_mom", "t_cmom", "s_cmom", "t_temp", "s_temp", "opt_lr", "opt_wd")


def resolve_cfg(j):
    cfg = OrderedDict(DEFAULTS)
    for k, v in j.items():
        if k not in cfg and k != "steps_per_epoch":
            raise ValueError(f"unknown cfg key {k!r}")
        cfg[k] = v
    if "steps_per_epoch" not in cfg:
        raise ValueError("cfg.json needs steps_per_epoch")
    if cfg["t_bn_mode"] == "from_student" and not cfg["t_eval"]:
        raise ValueError("t_bn_mode from_student requires t_eval true")
    return cfg


def build_models(cfg, dtype=torch.float64):
    sizes, _ = mc_spec(cfg["mc"])
    torch.manual_seed(0)  # construction-time values are overwritten by the init state anyway
    m = DINOModel(cfg, sizes[0]).to(dtype)
    return copy.deepcopy(m), copy.deepcopy(m)


###################################################################################################################
# Loss (spec §6.2 with Part A: 2-D targets broadcast to every teacher slot; CE, KL, H_pred always computed)
###################################################################################################################

def pairs_of(t_idx, s_idx, pairing):
    out = []
    for a, it in enumerate(t_idx):
        for b, is_ in enumerate(s_idx):
            if (pairing == "opposite" and it == is_) or (pairing == "same" and it != is_):
                continue
            out.append((a, b))
    if not out:
        raise ValueError(f"loss_pairing {pairing} leaves no crop pairs")
    return out


def targets_of(cfg, t_logits, target, k_out, t_idx):
    """[C_t, B, K] target logits / probabilities as the loss sees them, and whether they are one-hot labels."""
    if cfg["s_mode"] == "distillation":
        return t_logits, False
    n_slots = len(t_idx)
    if target.dim() == 1:
        onehot = F.one_hot(target, k_out).to(t_logits.dtype)
        return onehot.unsqueeze(0).expand(n_slots, -1, -1), True
    return target.to(t_logits.dtype).unsqueeze(0).expand(n_slots, -1, -1), False


def loss_torch(cfg, s_logits, targ, is_onehot, t_idx, s_idx):
    """The testbed's loop form (multicrop_loss_clf / multicrop_loss_reg)."""
    pairs = pairs_of(t_idx, s_idx, cfg["loss_pairing"])
    if cfg["loss"] == "MSE":
        mses = [((targ[a] - s_logits[b]) ** 2).mean(-1) for a, b in pairs]
        mse = torch.stack(mses).mean(-1).mean(-1)
        return {"loss": mse, "MSE": mse}
    log_p = F.log_softmax(s_logits, dim=-1)
    h_preds = -(log_p.exp() * log_p).sum(-1)
    if is_onehot:
        q = targ
        h_targs = torch.zeros(targ.shape[:2], dtype=targ.dtype)
    else:
        log_q = F.log_softmax(targ, dim=-1)
        q = log_q.exp()
        h_targs = -(q * log_q).sum(-1)
    ces = [-(q[a] * log_p[b]).sum(-1) for a, b in pairs]
    kls = [c - h_targs[a] for c, (a, b) in zip(ces, pairs)]
    out = {"CE": torch.stack(ces).mean(-1).mean(-1), "KL": torch.stack(kls).mean(-1).mean(-1),
           "H_pred": h_preds.mean(-1).mean(-1)}
    out["loss"] = out[cfg["loss"]]
    return out


def loss_manual(cfg, s_logits, targ, is_onehot, t_idx, s_idx):
    """The same loss as one masked matrix (cross-check path)."""
    pairs = pairs_of(t_idx, s_idx, cfg["loss_pairing"])
    mask = torch.zeros(len(t_idx), len(s_idx), dtype=s_logits.dtype)
    for a, b in pairs:
        mask[a, b] = 1
    n = mask.sum() * s_logits.shape[1]
    if cfg["loss"] == "MSE":
        d = ((targ[:, None] - s_logits[None, :]) ** 2).mean(-1)  # [Ct, Cs, B]
        mse = (d * mask[..., None]).sum() / n
        return {"loss": mse, "MSE": mse}
    log_p = s_logits - torch.logsumexp(s_logits, -1, keepdim=True)
    p = torch.softmax(s_logits, -1)
    h_pred = -(p * log_p).sum() / (s_logits.shape[0] * s_logits.shape[1])
    if is_onehot:
        q, h_t = targ, torch.zeros(targ.shape[:2], dtype=targ.dtype)
    else:
        q = torch.softmax(targ, -1)
        h_t = -(q * (targ - torch.logsumexp(targ, -1, keepdim=True))).sum(-1)
    ce_all = -torch.einsum("abk,cbk->acb", q, log_p)  # [Ct, Cs, B]
    ce = (ce_all * mask[..., None]).sum() / n
    kl = ((ce_all - h_t[:, None]) * mask[..., None]).sum() / n
    out = {"CE": ce, "KL": kl, "H_pred": h_pred}
    out["loss"] = out[cfg["loss"]]
    return out


###################################################################################################################
# Optimizers for the cross-check path (torch's single-tensor formulas written out, spec §7.2)
###################################################################################################################

class ManualOptimizer:
    def __init__(self, kind, groups, beta1, beta2, mom):
        self.kind, self.groups, self.b1, self.b2, self.mom = kind, groups, beta1, beta2, mom
        self.state = {}

    @torch.no_grad()
    def step(self):
        for g in self.groups:
            lr, wd = g["lr"], g["weight_decay"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state.setdefault(id(p), {})
                grad = p.grad
                if self.kind == "sgd":
                    d = grad + wd * p if wd != 0 else grad.clone()
                    st["buf"] = d.clone() if "buf" not in st else self.mom * st["buf"] + d
                    p.sub_(lr * st["buf"])
                    continue
                if self.kind == "adamw":
                    p.mul_(1 - lr * wd)
                elif wd != 0:
                    grad = grad + wd * p
                st["step"] = st.get("step", 0) + 1
                m = st.get("m", torch.zeros_like(p))
                v = st.get("v", torch.zeros_like(p))
                st["m"] = self.b1 * m + (1 - self.b1) * grad
                st["v"] = self.b2 * v + (1 - self.b2) * grad * grad
                t = st["step"]
                m_hat = st["m"] / (1 - self.b1 ** t)
                denom = st["v"].sqrt() / math.sqrt(1 - self.b2 ** t) + 1e-8
                p.sub_(lr * m_hat / denom)

    def zero_grad(self):
        for g in self.groups:
            for p in g["params"]:
                p.grad = None


###################################################################################################################
# The training run
###################################################################################################################

def is_bias(name, p):
    return name.endswith("bias") or p.dim() == 1


def run_steps(cfg, init, batches, dtype, impl="torch"):
    """Runs the K micro-batches of `batches` from `init`; returns (final state {name: tensor}, metrics
    {name: [K] float64 list}). impl 'manual' swaps in independent formulas for the loss, weight norm, clipping,
    optimizer, EMA and centre update (a cross-check of the 'torch' path)."""
    WeightNormLinear.impl = impl
    student, teacher = build_models(cfg, dtype)
    student.load_state_dict({k[8:]: v.to(dtype) if v.is_floating_point() else v
                             for k, v in init.items() if k.startswith("student.")}, strict=True)
    teacher.load_state_dict({k[8:]: v.to(dtype) if v.is_floating_point() else v
                             for k, v in init.items() if k.startswith("teacher.")}, strict=True)
    teacher.requires_grad_(False)
    student.requires_grad_(True)

    sizes, t_flags = mc_spec(cfg["mc"])
    t_idx = [i for i, t in enumerate(t_flags) if t]
    s_idx = list(range(len(sizes)))
    spe, accum = int(cfg["steps_per_epoch"]), int(cfg["batchaccum"])
    n_micro = 0
    while f"step{n_micro}/crop0" in batches:
        n_micro += 1
    ys = {k: sched_prep(parse_schedule(cfg[k]), int(cfg["n_steps"]), int(cfg["n_epochs"]), spe) for k in SCHEDULED}
    n_opt = -(-n_micro // accum)
    train_len = int(cfg["n_epochs"]) * spe
    if int(cfg["n_steps"]) >= 0:
        train_len = min(train_len, int(cfg["n_steps"])) if int(cfg["n_epochs"]) >= 0 else int(cfg["n_steps"])
    if n_opt > train_len or any(n_opt > len(v) for v in ys.values()):
        raise ValueError(f"{n_opt} optimizer steps exceed the run (length {train_len}) or a schedule")

    def rd(v):  # hyper-parameters in the run's dtype (the testbed's 0-dim schedule tensors)
        return float(np.float32(v)) if dtype == torch.float32 else float(v)

    named = list(student.named_parameters())
    groups = [{"params": [p for n, p in named if not is_bias(n, p)], "lr": 0.0, "weight_decay": 0.0},
              {"params": [p for n, p in named if is_bias(n, p)], "lr": 0.0, "weight_decay": 0.0}]
    kind, b1, b2, mom = cfg["opt"], float(cfg["opt_beta1"]), float(cfg["opt_beta2"]), float(cfg["opt_mom"])
    if impl == "manual":
        opt = ManualOptimizer(kind, groups, b1, b2, mom)
    elif kind == "adamw":
        opt = torch.optim.AdamW(groups, lr=0.0, betas=(b1, b2), eps=1e-8, weight_decay=0.0, foreach=False)
    elif kind == "adam":
        opt = torch.optim.Adam(groups, lr=0.0, betas=(b1, b2), eps=1e-8, weight_decay=0.0, foreach=False)
    elif kind == "sgd":
        opt = torch.optim.SGD(groups, lr=0.0, momentum=mom, dampening=0, nesterov=False, weight_decay=0.0,
                              foreach=False)
    else:
        raise ValueError(kind)
    lin2 = student.head.last_layer.lin2
    frozen = list(lin2.parameters()) if lin2 is not None else []
    from_student = cfg["t_bn_mode"] == "from_student"
    bn_pairs = [(ms, mt) for (ns, ms), (nt, mt) in zip(student.named_modules(), teacher.named_modules())
                if isinstance(ms, nn.modules.batchnorm._NormBase) and ns == nt]
    t_params = dict(teacher.named_parameters())

    metrics = OrderedDict((k, []) for k in (["loss", "MSE"] if cfg["loss"] == "MSE" else
                                            ["loss", "CE", "KL", "H_pred"]))
    hp_log = []
    for k in range(n_micro):
        g = k // accum
        epoch = g // spe
        hv = {name: rd(ys[name][g]) for name in SCHEDULED}
        lr = rd(hv["opt_lr"] * cfg["bs_train"] * accum / 256)
        hp_log.append(dict(hv, lr_used=lr))
        T = lambda v: torch.tensor(v, dtype=dtype)  # noqa: E731

        student.train()
        teacher.train()
        if cfg["t_eval"]:
            teacher.eval()
        crops = [batches[f"step{k}/crop{i}"].to(dtype) for i in range(len(sizes))]
        with torch.no_grad():
            _, t_logits = teacher([crops[i] for i in t_idx], temp=T(hv["t_temp"]), cmom=T(hv["t_cmom"]),
                                  update_cent=True, impl=impl)
        _, s_logits = student([crops[i] for i in s_idx], temp=T(hv["s_temp"]), cmom=T(hv["s_cmom"]),
                              update_cent=True, impl=impl)
        target = batches.get(f"step{k}/target")
        targ, onehot = targets_of(cfg, t_logits, target, student.out_dim, t_idx)
        out = (loss_torch if impl == "torch" else loss_manual)(cfg, s_logits, targ, onehot, t_idx, s_idx)
        for name in metrics:
            metrics[name].append(float(out[name]))
        (out["loss"] / accum).backward()

        if (k + 1) % accum == 0:
            if epoch < int(cfg["wn_freeze_epochs"]):
                for p in frozen:
                    p.grad = None
            with_grad = [p for p in student.parameters() if p.grad is not None]
            clip = float(cfg["clip_grad"])
            if clip > 0 and with_grad:
                if impl == "torch":
                    torch.nn.utils.clip_grad_norm_(with_grad, clip)
                else:
                    total = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in with_grad)).to(dtype)
                    coef = clip / (total + 1e-6)
                    if coef < 1:
                        for p in with_grad:
                            p.grad.mul_(coef)
            for grp in groups:
                grp["lr"] = lr
            groups[0]["weight_decay"] = hv["opt_wd"]
            groups[1]["weight_decay"] = 0.0
            opt.step()
            opt.zero_grad(set_to_none=True) if impl == "torch" else opt.zero_grad()

        with torch.no_grad():
            if cfg["t_mode"] == "ema":
                m = T(hv["t_mom"])
                for n, p_s in student.named_parameters():
                    p_t = t_params[n]
                    if impl == "torch":
                        p_t.copy_(m * p_t + (1 - m) * p_s)
                    else:
                        p_t.copy_(torch.lerp(p_s, p_t, m))
                if from_student:
                    for ms, mt in bn_pairs:
                        for buf in ("running_mean", "running_var"):
                            bt, bs = getattr(mt, buf), getattr(ms, buf)
                            bt.copy_(m * bt + (1 - m) * bs if impl == "torch" else torch.lerp(bs, bt, m))
            last_of_epoch = (k + 1) % (accum * spe) == 0
            every = int(cfg["t_update_every"])
            if cfg["t_mode"] == "prev_epoch" and last_of_epoch and epoch % every == every - 1:
                for n, p_s in student.named_parameters():
                    t_params[n].copy_(p_s)
                if from_student:
                    for ms, mt in bn_pairs:
                        mt.running_mean.copy_(ms.running_mean)
                        mt.running_var.copy_(ms.running_var)

    state = OrderedDict()
    for prefix, net in (("student.", student), ("teacher.", teacher)):
        for n, v in net.state_dict().items():
            state[prefix + n] = v.detach().clone()
    return state, metrics, hp_log


###################################################################################################################
# Initial states and batches
###################################################################################################################

def f32r(t):
    """Rounds a float64 tensor to float32-representable values (kept as float64)."""
    return t.to(torch.float32).to(torch.float64)


def draw_state(model, gen, fresh=False, cent_scale=0.0, head_bias=0.02):
    """A sensible random state for one network: conv weights kaiming_normal(fan_out, relu), conv biases
    U(+-1/sqrt(fan_in)), head Linear weights trunc_normal(0.02) (bias N(0, head_bias^2)), norm weights 1 + N(0, 0.1^2)
    and biases N(0, 0.1^2), BN running_mean N(0, 0.2^2), running_var U(0.5, 1.5), num_batches_tracked 0..99, cent
    N(0, cent_scale^2). fresh=True gives the testbed's fresh init (norm 1/0, stats 0/1, counters 0, biases 0)."""
    sd = OrderedDict()
    mods = dict(model.named_modules())
    for name, v in model.state_dict().items():
        owner, leaf = name.rsplit(".", 1)
        mod = mods[owner]
        shape, t = v.shape, None
        randn = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
        rand = lambda *s: torch.rand(*s, generator=gen, dtype=torch.float64)  # noqa: E731
        if leaf == "num_batches_tracked":
            t = torch.tensor(0 if fresh else int(torch.randint(0, 100, (1,), generator=gen)), dtype=torch.int64)
        elif leaf == "cent":
            t = cent_scale * randn(*shape)
        elif isinstance(mod, nn.Conv2d):
            if leaf == "weight":
                fan_out = shape[0] * shape[2] * shape[3]
                t = randn(*shape) * math.sqrt(2.0 / fan_out)
            else:
                bound = 1 / math.sqrt(mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1])
                t = (2 * rand(*shape) - 1) * bound
        elif isinstance(mod, (nn.Linear, WeightNormLinear)):
            if leaf == "weight":
                t = (randn(*shape) * 0.02).clamp(-2, 2)
            else:
                t = torch.zeros(shape, dtype=torch.float64) if fresh else head_bias * randn(*shape)
        elif isinstance(mod, (nn.modules.batchnorm._NormBase, nn.GroupNorm)):
            if leaf == "weight":
                t = torch.ones(shape, dtype=torch.float64) if fresh else 1 + 0.1 * randn(*shape)
            elif leaf == "bias":
                t = torch.zeros(shape, dtype=torch.float64) if fresh else 0.1 * randn(*shape)
            elif leaf == "running_mean":
                t = torch.zeros(shape, dtype=torch.float64) if fresh else 0.2 * randn(*shape)
            elif leaf == "running_var":
                t = torch.ones(shape, dtype=torch.float64) if fresh else 0.5 + rand(*shape)
        if t is None:
            raise ValueError(f"no init rule for {name}")
        sd[name] = t if t.dtype == torch.int64 else f32r(t)
    return sd


def make_init(case, cfg, gen):
    model, _ = build_models(cfg)
    ini = case.get("init", {})
    student = draw_state(model, gen, fresh=ini.get("fresh", False), cent_scale=ini.get("s_cent", 0.0))
    if ini.get("teacher_differs", False):
        teacher = draw_state(model, gen, fresh=ini.get("fresh", False), cent_scale=ini.get("t_cent", 0.0))
    else:  # s_init teacher: identical weights and buffers; the centres may still be set per network
        teacher = OrderedDict((k, v.clone()) for k, v in student.items())
        teacher["head.cent"] = f32r(ini.get("t_cent", 0.0) * torch.randn(teacher["head.cent"].shape,
                                                                        generator=gen, dtype=torch.float64))
    out = OrderedDict()
    for k, v in student.items():
        out["student." + k] = v
    for k, v in teacher.items():
        out["teacher." + k] = v
    return out


def quantised_normal(shape, gen, levels):
    """N(0, 1) values rounded to multiples of 1/levels and clipped to +-4, as float32: exact in both precisions,
    and compressible (git) like real normalised pixels, which also take a few hundred distinct values."""
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    return (torch.round(x * levels).clamp(-4 * levels, 4 * levels) / levels).to(torch.float32)


def make_batches(case, cfg, gen):
    sizes, _ = mc_spec(cfg["mc"])
    b, k_steps = cfg["bs_train"], case["K"]
    out = OrderedDict()
    for k in range(k_steps):
        for i, s in enumerate(sizes):
            out[f"step{k}/crop{i}"] = quantised_normal((b, 3, s, s), gen, 32)
        tk = case.get("targets")
        if tk == "labels":
            out[f"step{k}/target"] = torch.randint(0, case["n_classes"], (b,), generator=gen, dtype=torch.int64)
        elif tk == "logits":
            n = cfg["out_dim"]
            out[f"step{k}/target"] = 2.0 * quantised_normal((b, n), gen, 64)
    return out


###################################################################################################################
# The cases
###################################################################################################################

SMALL_HEAD = {"out_dim": 32, "hid_dims": [32, 32], "l2bot_dim": 16}

CASES = [
    dict(name="c01_convnet16_2_defaults", K=5,
         about="convnet_16_2 (README layout, BatchNorm), mc 2x28+4x28, every other key at its CLI default: AdamW, "
               "CE opposite, ema, default schedules over n_epochs 3 x 2 steps (lr warm-up split 10 epochs > 3: only "
               "the LinSched part, 20 values), wn_freeze_epochs 1 (steps 0-1 freeze lin2), fresh init "
               "(teacher == student, zero centre)",
         cfg=dict(enc="convnet_16_2", mc="2x28+4x28", bs_train=2, out_dim=64, hid_dims=[64, 64], l2bot_dim=32,
                  n_epochs=3, steps_per_epoch=2),
         init=dict(fresh=True)),
    dict(name="c02_resnet20_gn8_mlpbn", K=5,
         about="resnet20 (tiny stem, projection shortcuts) with enc_norm_layer GroupNorm8 (GroupNorm(C//8, C)), "
               "mlp_bn (BatchNorm1d over the C*B rows), mc 2x32, teacher != student, lr as a JSON number",
         cfg=dict(enc="resnet20", enc_norm_layer="GroupNorm8", tiny_input=True, mc="2x32", bs_train=4,
                  mlp_bn=True, **SMALL_HEAD, n_epochs=2, steps_per_epoch=3, opt_lr=2e-4,
                  opt_wd="CosSched(0.04, 0.4)", wn_freeze_epochs=1),
         init=dict(teacher_differs=True, t_cent=0.05)),
    dict(name="c03_convnet16_2e_mse_same_noupdate", K=5,
         about="loss MSE with loss_pairing same on mc 1x28 (1 pair); the random-teacher setting: t_mode no_update, "
               "t_eval true with t_bn_mode from_data (teacher BN uses its own frozen running stats), clip_grad 0, "
               "wn_freeze_epochs 0, opt_wd a number; convnet_16_2e (BatchNorm block + tail conv)",
         cfg=dict(enc="convnet_16_2e", mc="1x28", bs_train=4, **SMALL_HEAD, loss="MSE", loss_pairing="same",
                  t_mode="no_update", t_eval=True, clip_grad=0.0, wn_freeze_epochs=0, opt_lr=2e-4, opt_wd=0.01,
                  n_epochs=1, steps_per_epoch=5),
         init=dict(teacher_differs=True, t_cent=0.05)),
    dict(name="c04_supervised_labels_sgd", K=5,
         about="s_mode supervised with int64 labels (one-hot to both teacher slots), opt sgd (momentum 0.9, "
               "L2 decay on the weights group), loss CE pairing all, hid_dims [] with l2bot_cfg -/-/-/-/lb/- (a "
               "plain Linear E -> K as lin2, l2bot_dim 0), clip_grad 1, convnet_32_1 (no norm layer)",
         cfg=dict(enc="convnet_32_1", mc="2x28", bs_train=4, out_dim=16, hid_dims=[], l2bot_dim=0,
                  l2bot_cfg="-/-/-/-/lb/-", s_mode="supervised", opt="sgd", opt_mom=0.9, opt_lr=2.0,
                  opt_wd="CosSched(0.01, 0.1)", loss_pairing="all", clip_grad=1.0, wn_freeze_epochs=0,
                  n_epochs=5, steps_per_epoch=1),
         targets="labels", n_classes=10, init=dict(t_cent=0.05)),
    dict(name="c05_from_student_teval", K=5,
         about="t_mode ema with t_bn_mode from_student and t_eval true: teacher in eval mode, its BN running "
               "stats (encoder BatchNorm2d and the head's BatchNorm1d of mlp_bn) EMA-ed from the student's; "
               "mlp_act ReLU; teacher != student (different BN stats); strong t_mom",
         cfg=dict(enc="convnet_16_2e", mc="2x28", bs_train=4, **SMALL_HEAD, mlp_bn=True, mlp_act="ReLU",
                  t_bn_mode="from_student", t_eval=True, t_mom="CosSched(0.9, 1.0)", opt_lr=2e-4,
                  n_epochs=2, steps_per_epoch=3),
         init=dict(teacher_differs=True, t_cent=0.05)),
    dict(name="c06_prev_epoch", K=5,
         about="t_mode prev_epoch, t_update_every 1, steps_per_epoch 2: the teacher gets a copy of the student "
               "after steps 1 and 3 (ends of epochs 0 and 1), BN from_data; teacher != student at init",
         cfg=dict(enc="convnet_16_2", mc="2x28+4x28", bs_train=2, **SMALL_HEAD, t_mode="prev_epoch",
                  t_update_every=1, opt_lr=5e-4, n_epochs=3, steps_per_epoch=2),
         init=dict(teacher_differs=True, t_cent=0.05)),
    dict(name="c06b_prev_epoch_every2_from_student", K=5,
         about="t_mode prev_epoch with t_update_every 2 and steps_per_epoch 1 (copies after steps 1 and 3), "
               "t_bn_mode from_student + t_eval (BN running stats copied too), convnet_32_2",
         cfg=dict(enc="convnet_32_2", mc="2x28", bs_train=4, **SMALL_HEAD, t_mode="prev_epoch", t_update_every=2,
                  t_bn_mode="from_student", t_eval=True, opt_lr=2e-4, n_epochs=5, steps_per_epoch=1,
                  wn_freeze_epochs=0),
         init=dict(teacher_differs=True)),
    dict(name="c07_adam", K=5,
         about="opt adam (L2-coupled decay 0.05 on the weights group, none on biases/1-D), betas 0.8/0.99, "
               "convnet_16_1 (no norm), mc 2x28+4x28, non-zero teacher centre",
         cfg=dict(enc="convnet_16_1", mc="2x28+4x28", bs_train=2, **SMALL_HEAD, opt="adam", opt_beta1=0.8,
                  opt_beta2=0.99, opt_lr=0.3, opt_wd=0.05, n_epochs=2, steps_per_epoch=3),
         init=dict(t_cent=0.05)),
    dict(name="c08_schedules", K=5,
         about="schedule-driven hyper-parameters: lr CatSched with a float split (round(0.4*6) = 2 steps of "
               "LinSched then 4 of CosSched), t_temp LinSched, t_mom CosSched, t_cmom ExpSched, s_temp LinWarmup "
               "over 1 epoch, opt_wd MultiStep (int and float milestones), s_cmom a JSON number (student centering "
               "on); n_steps 5 with n_epochs 3 x 2: the schedules span 6 steps, the run stops after 5",
         cfg=dict(enc="convnet_16_2", mc="2x28", bs_train=2, **SMALL_HEAD,
                  opt_lr="CatSched(LinSched(0.0, 0.001), CosSched(0.001, 0.0001), 0.4)", t_temp="LinSched(0.04, 0.07)",
                  t_mom="CosSched(0.99, 1.0)", t_cmom="ExpSched(0.5, 0.95)", s_cmom=0.8,
                  s_temp="LinWarmup(0.2, 0.1, 1)", opt_wd="MultiStep(0.1, 0.5, 1, 0.7)", n_epochs=3, n_steps=5,
                  steps_per_epoch=2),
         init=dict(t_cent=0.05, s_cent=0.05)),
    dict(name="c09_wn_both", K=5,
         about="l2bot_cfg wn/lb/fn/wn/l/- (weight-normalised lin1 and lin2, gradient through the row norms); "
               "wn_freeze_epochs 2 with steps_per_epoch 2: lin2 frozen in steps 0-3, updated in step 4 (its AdamW "
               "state starts there)",
         cfg=dict(enc="convnet_16_1", mc="2x28", bs_train=4, **SMALL_HEAD, l2bot_cfg="wn/lb/fn/wn/l/-",
                  opt_lr=0.3, wn_freeze_epochs=2, n_epochs=3, steps_per_epoch=2),
         init=dict(t_cent=0.05)),
    dict(name="c09b_wn_fnd", K=5,
         about="l2bot_cfg -/l/fnd/wn/lb/fn (lin1 without bias, detached feature-norm denominator, weight-normalised "
               "lin2 with bias, output feature norm); wn_freeze_epochs 1 with steps_per_epoch 3 (steps 0-2 frozen)",
         cfg=dict(enc="convnet_16_2", mc="2x28+4x28", bs_train=2, **SMALL_HEAD, l2bot_cfg="-/l/fnd/wn/lb/fn",
                  opt_lr=5e-4, wn_freeze_epochs=1, n_epochs=2, steps_per_epoch=3),
         init=dict(teacher_differs=True, t_cent=0.05)),
    dict(name="c10_supervised_logits_kl", K=5,
         about="s_mode supervised with float target logits [B, out_dim] broadcast to both teacher slots (Part A), "
               "loss KL (H_targ = entropy of softmax(target)), pairing opposite on 2x28+4x28; the teacher is still "
               "forwarded and its centre updated; teacher != student",
         cfg=dict(enc="convnet_16_1e", mc="2x28+4x28", bs_train=2, **SMALL_HEAD, s_mode="supervised", loss="KL",
                  opt_lr=0.3, n_epochs=2, steps_per_epoch=3),
         targets="logits", init=dict(teacher_differs=True, t_cent=0.05)),
    dict(name="c11_hpred_all", K=5,
         about="loss H_pred (the student's own entropy) with loss_pairing all (12 pairs for CE/KL on 2x28+4x28)",
         cfg=dict(enc="convnet_16_2", mc="2x28+4x28", bs_train=2, **SMALL_HEAD, loss="H_pred", loss_pairing="all",
                  opt_lr=5e-4, n_epochs=2, steps_per_epoch=3),
         init=dict(t_cent=0.05)),
    dict(name="c12_batchaccum2", K=6,
         about="batchaccum 2: 6 micro-batches = 3 optimizer steps (gradients of loss/2 summed over 2 micro-batches, "
               "schedules indexed by the optimizer step, lr scaled by bs*2/256), teacher EMA and centre update after "
               "every micro-batch; steps_per_epoch 2 (optimizer steps): lin2 frozen in optimizer steps 0-1; loss[k] "
               "is micro-batch k's loss before the division",
         cfg=dict(enc="convnet_16_2", mc="2x28", bs_train=4, **SMALL_HEAD, batchaccum=2, opt_lr=2e-4,
                  t_mom="CosSched(0.9, 1.0)", n_epochs=2, steps_per_epoch=2),
         init=dict(t_cent=0.05)),
    dict(name="c12b_batchaccum2_prev_epoch", K=6,
         about="batchaccum 2 with t_mode prev_epoch and steps_per_epoch 1: the copy follows every second "
               "micro-batch (after the optimizer step of each epoch); clip_grad 0.05 (active)",
         cfg=dict(enc="convnet_16_1", mc="2x28", bs_train=4, **SMALL_HEAD, batchaccum=2, t_mode="prev_epoch",
                  opt_lr=0.1, clip_grad=0.05, n_epochs=3, steps_per_epoch=1, wn_freeze_epochs=0),
         init=dict(teacher_differs=True)),
]

LARGE_CASES = [
    dict(name="x03_vgg11bn_mse_same", K=3,
         about="vgg11_bn (torchvision feature indices, 9.2M parameters) on mc 1x32 with loss MSE and loss_pairing "
               "same. LARGE (about 450 MB): only written with --large",
         cfg=dict(enc="vgg11_bn", mc="1x32", bs_train=4, out_dim=32, hid_dims=[64], l2bot_dim=16, loss="MSE",
                  loss_pairing="same", opt_lr=2e-4, opt_wd=0.01, n_epochs=1, steps_per_epoch=3, wn_freeze_epochs=0),
         init=dict(t_cent=0.05)),
]


def case_cfg(case):
    cfg = OrderedDict(DEFAULTS)
    cfg.update(case["cfg"])
    out = OrderedDict((k, cfg[k]) for k in DEFAULTS)
    out["steps_per_epoch"] = case["cfg"]["steps_per_epoch"]
    return out


###################################################################################################################
# Generation, cross-checks, summary
###################################################################################################################

def seed_of(name):
    return zlib.crc32(name.encode("utf-8"))


def state_diff(a, b):
    """max over tensors of max|a - b| / max(1, max|b|) (the C++ test's measure), and the tensor name."""
    worst, where = 0.0, ""
    for n, rb in b.items():
        ra = a[n].double()
        rb = rb.double()
        scale = max(1.0, float(rb.abs().max())) if rb.numel() else 1.0
        d = float((ra - rb).abs().max()) / scale if rb.numel() else 0.0
        if d > worst:
            worst, where = d, n
    return worst, where


def expected_tensors(state, metrics, dtype):
    """State in `dtype` (float32 holds the float32 run exactly, at half the size), metrics in float64."""
    out = OrderedDict()
    for n, v in state.items():
        out[n] = v if v.dtype == torch.int64 else v.to(dtype)
    for n, vals in metrics.items():
        out[n] = np.asarray(vals, dtype=np.float64)
    return out


def generate(case, out_root, check=True):
    name = case["name"]
    cfg = resolve_cfg(case_cfg(case))
    if case["K"] % cfg["batchaccum"]:
        raise ValueError(f"{name}: K must be a multiple of batchaccum (whole accumulation windows)")
    gen = torch.Generator().manual_seed(seed_of(name))
    init = make_init(case, cfg, gen)
    batches = make_batches(case, cfg, gen)
    res = {}
    for dtype in (torch.float64, torch.float32):
        res[dtype] = run_steps(cfg, init, batches, dtype)
    info = dict(name=name, K=case["K"])
    if check:
        manual = run_steps(cfg, init, batches, torch.float64, impl="manual")
        info["manual_vs_torch"] = state_diff(manual[0], res[torch.float64][0])
        mdiff = max(abs(a - b) / max(1.0, abs(b)) for n in manual[1]
                    for a, b in zip(manual[1][n], res[torch.float64][1][n]))
        info["manual_vs_torch_metrics"] = mdiff
    f64_state, f64_metrics, hp_log = res[torch.float64]
    info["f32_vs_f64"] = state_diff(res[torch.float32][0], f64_state)
    info["init_vs_final"] = state_diff({k: v for k, v in init.items() if v.is_floating_point()},
                                       {k: v for k, v in f64_state.items() if v.is_floating_point()})
    info["loss0"], info["lossK"] = f64_metrics["loss"][0], f64_metrics["loss"][-1]
    info["loss32"] = res[torch.float32][1]["loss"][-1]
    info["params"] = sum(v.numel() for k, v in init.items() if k.startswith("student.") and v.is_floating_point()
                         and "running_" not in k and not k.endswith(".cent"))

    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "cfg.json"), "w") as f:  # one key per line, values compact
        f.write("{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in case_cfg(case).items()) + "\n}\n")
    meta = {"case": name, "micro_batches": case["K"], "generator": "tests/parity/make_step_fixtures.py"}
    # Every initial value is float32-representable, so float32 storage is exact and half the size.
    st_write(os.path.join(d, "init.safetensors"),
             OrderedDict((k, v.to(torch.float32) if v.is_floating_point() else v) for k, v in init.items()), meta)
    st_write(os.path.join(d, "batches.safetensors"), batches, meta)
    st_write(os.path.join(d, "expected_f64.safetensors"), expected_tensors(f64_state, f64_metrics, torch.float64),
             dict(meta, dtype="float64"))
    st_write(os.path.join(d, "expected_f32.safetensors"),
             expected_tensors(res[torch.float32][0], res[torch.float32][1], torch.float32), dict(meta, dtype="float32"))
    info["bytes"] = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    info["hp"] = hp_log
    return info


def semantic_selftest():
    """Step semantics checked by hand on a few cases (float64): prev_epoch copies, from_student BN copies,
    the wn freeze window, the EMA formula, the accumulation window and the centre update."""
    def setup(name):
        c = next(c for c in CASES if c["name"] == name)
        cfg = resolve_cfg(case_cfg(c))
        gen = torch.Generator().manual_seed(seed_of(name))
        init = make_init(c, cfg, gen)
        return cfg, init, make_batches(c, cfg, gen)

    def first(b, k):
        return {n: v for n, v in b.items() if int(n.split("/")[0][4:]) < k}

    def run(cfg, init, b, k):
        return run_steps(cfg, init, first(b, k), torch.float64)

    def params(state):
        return [n for n in state if n.startswith("student.") and state[n].is_floating_point()
                and "running_" not in n and not n.endswith(".cent")]

    checks = []
    cfg, init, b = setup("c06_prev_epoch")  # copies at the ends of epochs 0 and 1 (after steps 1 and 3)
    s4, s5 = run(cfg, init, b, 4)[0], run(cfg, init, b, 5)[0]
    checks.append(("prev_epoch copy after step 3, none after step 4",
                   all(torch.equal(s4["teacher." + n[8:]], s4[n]) and torch.equal(s5["teacher." + n[8:]], s4[n])
                       for n in params(s4))))
    cfg, init, b = setup("c06b_prev_epoch_every2_from_student")  # every 2 epochs of 1 step: after steps 1, 3
    s1, s2 = run(cfg, init, b, 1)[0], run(cfg, init, b, 2)[0]
    bn = [n for n in s2 if n.startswith("student.") and "running_" in n]
    checks.append(("prev_epoch every 2 with from_student copies BN stats",
                   all(torch.equal(s2["teacher." + n[8:]], s2[n]) for n in bn + params(s2))
                   and all(torch.equal(s1["teacher." + n[8:]], init["teacher." + n[8:]]) for n in bn + params(s1))))
    cfg, init, b = setup("c09_wn_both")  # wn_freeze_epochs 2 x 2 steps: lin2 moves in step 4 only
    n = "student.head.last_layer.lin2.weight"
    s4, s5 = run(cfg, init, b, 4)[0], run(cfg, init, b, 5)[0]
    checks.append(("lin2 frozen in steps 0-3, updated in step 4",
                   torch.equal(s4[n], init[n]) and not torch.equal(s5[n], init[n])))
    cfg, init, b = setup("c12_batchaccum2")
    s4, s5, (s6, _, hp) = run(cfg, init, b, 4)[0], run(cfg, init, b, 5)[0], run(cfg, init, b, 6)
    m = hp[5]["t_mom"]
    ema_err = max(float((s6["teacher." + n[8:]] - (m * s5["teacher." + n[8:]] + (1 - m) * s6[n])).abs().max())
                  for n in params(s6))
    checks.append((f"EMA by hand after the last micro-batch (max error {ema_err:.1e})", ema_err < 1e-15))
    checks.append(("student constant inside an accumulation window, teacher EMA-ed every micro-batch",
                   all(torch.equal(s5[n], s4[n]) for n in params(s5))
                   and not torch.equal(s5["teacher.enc.conv1.weight"], s4["teacher.enc.conv1.weight"])))
    s1 = run(cfg, init, b, 1)[0]
    teacher, _ = build_models(cfg)
    teacher.load_state_dict({n[8:]: v for n, v in init.items() if n.startswith("teacher.")})
    with torch.no_grad():
        proj, _ = teacher.train()([b["step0/crop0"].double(), b["step0/crop1"].double()])
    want = 0.9 * init["teacher.head.cent"] + 0.1 * proj.mean((0, 1))
    cent_err = float((s1["teacher.head.cent"] - want).abs().max())
    checks.append((f"teacher centre by hand after micro-batch 0 (max error {cent_err:.1e})", cent_err < 1e-15))
    bad = [c for c, ok in checks if not ok]
    if bad:
        raise SystemExit("step semantics checks failed: " + "; ".join(bad))
    return [c for c, _ in checks]


def print_summary(infos):
    print(f"{'case':40s} {'params':>8s} {'K':>2s} {'loss[0]':>11s} {'loss[K-1] f64':>14s} {'f32':>11s} "
          f"{'|f32-f64|':>9s} {'manual':>9s} {'moved':>8s} {'KiB':>6s}  worst f32 tensor")
    for i in infos:
        man = i.get("manual_vs_torch", (float("nan"), ""))[0]
        print(f"{i['name']:40s} {i['params']:8d} {i['K']:2d} {i['loss0']:11.6f} {i['lossK']:14.9f} "
              f"{i['loss32']:11.6f} {i['f32_vs_f64'][0]:9.2e} {man:9.2e} {i['init_vs_final'][0]:8.2e} "
              f"{i['bytes'] / 1024:6.0f}  {i['f32_vs_f64'][1]}")
    print(f"total {sum(i['bytes'] for i in infos) / 2 ** 20:.2f} MiB")


def cmd_generate(args):
    torch.set_num_threads(1)
    n = schedule_selftest()
    print(f"schedules: {n} worked examples of spec §8.4 reproduced")
    if not args.no_check:
        for c in semantic_selftest():
            print(f"step semantics: {c}: OK")
    cases = CASES + (LARGE_CASES if args.large else [])
    if args.cases:
        known = {c["name"]: c for c in CASES + LARGE_CASES}
        missing = [c for c in args.cases if c not in known]
        if missing:
            raise SystemExit(f"unknown cases {missing}; known: {sorted(known)}")
        cases = [known[c] for c in args.cases]
    os.makedirs(args.out, exist_ok=True)
    infos, bad = [], []
    for case in cases:
        info = generate(case, args.out, check=not args.no_check)
        infos.append(info)
        if args.verbose:
            for g, hp in enumerate(info["hp"]):
                print(f"  {case['name']} micro-batch {g}: " + ", ".join(f"{k}={v:.9g}" for k, v in hp.items()))
        if "manual_vs_torch" in info and (info["manual_vs_torch"][0] > 1e-10
                                          or info["manual_vs_torch_metrics"] > 1e-12):
            bad.append(f"{case['name']}: manual path differs by {info['manual_vs_torch']} "
                       f"(metrics {info['manual_vs_torch_metrics']:.2e})")
        if info["f32_vs_f64"][0] > 2e-5:
            bad.append(f"{case['name']}: float32 run is {info['f32_vs_f64'][0]:.2e} from float64 at "
                       f"{info['f32_vs_f64'][1]} (the C++ float tolerance is 1e-4)")
    print_summary(infos)
    if bad:
        print("CHECKS FAILED:\n  " + "\n  ".join(bad))
        raise SystemExit(1)


###################################################################################################################
# check-load: a state written by dino_replay loads into the PyTorch networks (strict) and computes the same
###################################################################################################################

def cmd_check_load(args):
    torch.set_num_threads(1)
    case_dir = args.case
    with open(os.path.join(case_dir, "cfg.json")) as f:
        cfg = resolve_cfg(json.load(f))
    got, _ = st_read(args.out_file)
    batches, _ = st_read(os.path.join(case_dir, "batches.safetensors"))
    sizes, t_flags = mc_spec(cfg["mc"])
    t_idx = [i for i, t in enumerate(t_flags) if t]
    crops = [batches[f"step0/crop{i}"].to(torch.float64) for i in range(len(sizes))]
    failures = []
    for prefix in ("student", "teacher"):
        model, template = build_models(cfg)
        want = model.state_dict()
        sd = {}
        for k, v in got.items():
            if not k.startswith(prefix + "."):
                continue
            key = k[len(prefix) + 1:]
            both_float = v.is_floating_point() and key in want and want[key].is_floating_point()
            if key in want and want[key].dtype != v.dtype and not both_float:
                print(f"note: {k} is {v.dtype} in the file, {want[key].dtype} in PyTorch")
            sd[key] = v.to(torch.float64) if v.is_floating_point() else v
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            failures.append(f"{prefix}: load_state_dict(strict=True) failed: {e}")
            continue
        for k, v in sd.items():
            if tuple(v.shape) != tuple(want[k].shape):
                failures.append(f"{prefix}.{k}: shape {tuple(v.shape)} != {tuple(want[k].shape)}")
        # Forward in eval mode (BN uses the loaded running stats, the centre is subtracted) with the loaded
        # module, and the same forward computed directly from the file's tensors (functional_call on a fresh
        # module): equal outputs show that every tensor landed where its name says.
        model.eval()
        template.eval()
        x = [crops[i] for i in (t_idx if prefix == "teacher" else range(len(sizes)))]
        with torch.no_grad():
            proj_a, logit_a = model(x)
            direct = OrderedDict((k, v) for k, v in sd.items())
            proj_b, logit_b = torch.nn.utils.stateless.functional_call(template, direct, (x,))
        d = max(float((proj_a - proj_b).abs().max()), float((logit_a - logit_b).abs().max()))
        print(f"{prefix}: {len(sd)} tensors loaded strictly; forward logits {tuple(logit_a.shape)}, "
              f"loaded vs direct max|diff| = {d:.3e}")
        if not d == 0.0:
            failures.append(f"{prefix}: loaded and direct forward differ by {d}")
        # Informational: the forward of the case's expected states.
        for ref_name in ("expected_f64.safetensors", "expected_f32.safetensors"):
            path = os.path.join(case_dir, ref_name)
            if not os.path.exists(path):
                continue
            ref, _ = st_read(path)
            m_ref, _ = build_models(cfg)
            m_ref.load_state_dict({k[len(prefix) + 1:]: v for k, v in ref.items() if k.startswith(prefix + ".")},
                                  strict=True)
            m_ref.eval()
            with torch.no_grad():
                _, logit_r = m_ref(x)
            sdiff = state_diff({k: v for k, v in got.items() if k.startswith(prefix + ".")},
                               {k: v for k, v in ref.items() if k.startswith(prefix + ".")})
            print(f"  vs {ref_name}: forward logits max|diff| = {float((logit_a - logit_r).abs().max()):.3e}; "
                  f"state max|diff|/max(1,|ref|) = {sdiff[0]:.3e} at {sdiff[1]}")
    for n in ("loss", "CE", "KL", "H_pred", "MSE"):
        if n in got:
            ref, _ = st_read(os.path.join(case_dir, "expected_f64.safetensors"))
            if n in ref:
                print(f"{n}: got {got[n].tolist()}\n{'':{len(n)}}  f64 {ref[n].tolist()}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        raise SystemExit(1)
    print("check-load OK")


def main():
    warnings.filterwarnings("ignore", message="Using padding='same'")
    argv = sys.argv[1:]
    if argv and argv[0] == "check-load":
        p = argparse.ArgumentParser(prog="make_step_fixtures.py check-load")
        p.add_argument("out_file")
        p.add_argument("case")
        cmd_check_load(p.parse_args(argv[1:]))
        return
    if argv and argv[0] == "selftest":
        torch.set_num_threads(1)
        print(f"schedules: {schedule_selftest()} worked examples of spec §8.4 reproduced")
        for c in semantic_selftest():
            print(f"step semantics: {c}: OK")
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=OUT_ROOT, help="root folder of the case folders (default: fixtures/steps)")
    p.add_argument("--cases", nargs="*", default=None, help="only these cases")
    p.add_argument("--large", action="store_true", help="also write the large cases (vgg11_bn, about 450 MB)")
    p.add_argument("--no_check", action="store_true", help="skip the float64 cross-check path")
    p.add_argument("--verbose", action="store_true", help="print the hyper-parameters of every micro-batch")
    cmd_generate(p.parse_args(argv))


if __name__ == "__main__":
    main()
