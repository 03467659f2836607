#!/usr/bin/python3
"""Writes the per-layer PyTorch references of dino's parity tests (tests/parity/*.cpp):
fixtures/layers_f64.safetensors and fixtures/layers_f32.safetensors hold the same cases computed by torch in
float64 and in float32. Run with Debian's python3-torch: /usr/bin/python3 tests/parity/make_fixtures.py

Per case <c>: <c>/x, <c>/dy (the cotangent), <c>/y, <c>/dx, <c>/param/<state_dict key> (before the forward,
buffers included), <c>/grad/<parameter name>, <c>/buffer_after/<buffer name> (after the forward). The
"cases" metadata entry is a JSON object {case: options}: the layer kind and its constructor options, the
train flag, and the parameter and buffer names in torch's registration order.
"""
import copy
import json
import os
import warnings
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from safetensors_file import TORCH_DTYPES, write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))


# --- modules that are not torch.nn classes ------------------------------------------------------------------
class WeightNormLinear(nn.Module):
    """The testbed's weight-normalised Linear: rows of W divided by max(||row||, 1e-12)."""

    def __init__(self, d_in, d_out, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        self.bias = nn.Parameter(torch.empty(d_out)) if bias else None

    def forward(self, x):
        w = self.weight / self.weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return F.linear(x, w, self.bias)


class Normalize(nn.Module):
    """'fn': F.normalize(x, dim=-1); 'fnd': the norm detached from the graph."""

    def __init__(self, detach):
        super().__init__()
        self.detach = detach

    def forward(self, x):
        if self.detach:
            return x / x.norm(dim=-1, keepdim=True).detach().clamp_min(1e-12)
        return F.normalize(x, dim=-1)


# --- the cases ----------------------------------------------------------------------------------------------
CASES = []


def case(name, options, build, x_shape, train=True, x_scale=1.0):
    CASES.append(dict(name=name, options=options, build=build, x_shape=x_shape, train=train, x_scale=x_scale))


def linear(name, d_in, d_out, bias, wn, x_shape):
    opts = {"kind": "Linear", "in": d_in, "out": d_out, "bias": bias, "weight_norm": wn}
    build = (lambda: WeightNormLinear(d_in, d_out, bias)) if wn else (lambda: nn.Linear(d_in, d_out, bias=bias))
    case(name, opts, build, x_shape)


def conv(name, c_in, c_out, kernel, stride, padding, same, bias, x_shape):
    opts = {"kind": "Conv2d", "in": c_in, "out": c_out, "kernel": list(kernel), "stride": list(stride),
            "padding": list(padding), "same": same, "bias": bias}
    pad = "same" if same else tuple(padding)
    case(name, opts, lambda: nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad, bias=bias), x_shape)


linear("linear_bias", 5, 4, True, False, [6, 5])
linear("linear_nobias_3d", 5, 3, False, False, [2, 3, 5])
linear("linear_wn", 5, 4, True, True, [6, 5])
linear("linear_wn_nobias", 6, 3, False, True, [4, 6])
case("relu", {"kind": "ReLU"}, nn.ReLU, [3, 7])
case("gelu", {"kind": "GELU"}, nn.GELU, [3, 7], x_scale=2.0)
case("fn", {"kind": "L2Normalize", "detach": False}, lambda: Normalize(False), [2, 3, 5])
case("fnd", {"kind": "L2Normalize", "detach": True}, lambda: Normalize(True), [4, 6])
case("identity", {"kind": "Identity"}, nn.Identity, [3, 4])
case("flatten", {"kind": "Flatten"}, nn.Flatten, [2, 3, 4, 2])

conv("conv_3x3_p1", 3, 4, (3, 3), (1, 1), (1, 1), False, True, [2, 3, 7, 5])
conv("conv_3x3_same", 3, 4, (3, 3), (1, 1), (0, 0), True, True, [2, 3, 6, 5])
conv("conv_3x2_s21_p10", 3, 5, (3, 2), (2, 1), (1, 0), False, True, [2, 3, 7, 6])
conv("conv_1x1_s2_nobias", 4, 6, (1, 1), (2, 2), (0, 0), False, False, [2, 4, 7, 6])
conv("conv_4x2_same", 3, 4, (4, 2), (1, 1), (0, 0), True, True, [2, 3, 6, 5])

case("maxpool_k3s2p1", {"kind": "MaxPool2d", "kernel": 3, "stride": 2, "padding": 1},
     lambda: nn.MaxPool2d(3, 2, 1), [2, 3, 7, 6])
case("maxpool_k2", {"kind": "MaxPool2d", "kernel": 2, "stride": 0, "padding": 0},
     lambda: nn.MaxPool2d(2), [2, 3, 7, 5])
for incl in (True, False):
    case("avgpool_k3s2p1_" + ("incl" if incl else "excl"),
         {"kind": "AvgPool2d", "kernel": 3, "stride": 2, "padding": 1, "count_include_pad": incl},
         lambda incl=incl: nn.AvgPool2d(3, 2, 1, count_include_pad=incl), [2, 3, 7, 6])
for name, out, x_shape in (("adaptive_7x5_to_3x2", (3, 2), [2, 3, 7, 5]),
                           ("adaptive_5x5_to_2x2", (2, 2), [2, 3, 5, 5]),
                           ("adaptive_6x4_to_1x1", (1, 1), [2, 3, 6, 4])):
    case(name, {"kind": "AdaptiveAvgPool2d", "out": list(out)}, lambda out=out: nn.AdaptiveAvgPool2d(out), x_shape)

for train in (True, False):
    mode = "train" if train else "eval"
    case("bn1d_" + mode, {"kind": "BatchNorm1d", "num_features": 5, "eps": 1e-5, "momentum": 0.1},
         lambda: nn.BatchNorm1d(5), [6, 5], train=train)
    case("bn2d_" + mode, {"kind": "BatchNorm2d", "num_features": 4, "eps": 1e-5, "momentum": 0.1},
         lambda: nn.BatchNorm2d(4), [3, 4, 5, 3], train=train)
for name, groups, channels, affine, x_shape in (("gn_g4_c4", 4, 4, True, [2, 4, 5, 3]),
                                                 ("gn_g2_c16", 2, 16, True, [2, 16, 3, 2]),
                                                 ("gn_g1_c6", 1, 6, True, [3, 6, 4, 3]),
                                                 ("gn_g2_c6_noaffine", 2, 6, False, [2, 6, 3, 4])):
    case(name, {"kind": "GroupNorm", "num_groups": groups, "num_channels": channels, "eps": 1e-5, "affine": affine},
         lambda g=groups, c=channels, a=affine: nn.GroupNorm(g, c, eps=1e-5, affine=a), x_shape)

case("mlp", {"kind": "MLP", "in": 5, "hidden": 7, "out": 4},
     lambda: nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.GELU(), nn.Linear(7, 4), Normalize(False)), [6, 5])


def basic_block():
    downsample = nn.Sequential(nn.Conv2d(4, 6, 1, stride=2, bias=False), nn.BatchNorm2d(6))
    return torchvision.models.resnet.BasicBlock(4, 6, stride=2, downsample=downsample)


for train in (True, False):
    case("basic_block_" + ("train" if train else "eval"), {"kind": "BasicBlock", "in": 4, "out": 6, "stride": 2},
         basic_block, [2, 4, 7, 6], train=train)


# --- running the cases --------------------------------------------------------------------------------------
def randomise(module, gen):
    """Replaces torch's initial values: parameters N(0, 0.5^2) (affine norms around 1), running means
    N(0, 0.5^2), running variances U(0.5, 2), num_batches_tracked 3."""
    with torch.no_grad():
        for name, t in module.state_dict().items():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "num_batches_tracked":
                t.fill_(3)
            elif leaf == "running_var":
                t.copy_(0.5 + 1.5 * torch.rand(t.shape, generator=gen, dtype=t.dtype))
            else:
                t.copy_(0.5 * torch.randn(t.shape, generator=gen, dtype=t.dtype))


def run(c, gen):
    """The case in float64 and float32 from the same float64 draws: {dtype: {tensor name: tensor}}."""
    ref = c["build"]().double()
    randomise(ref, gen)
    x64 = c["x_scale"] * torch.randn(c["x_shape"], generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y_shape = copy.deepcopy(ref).eval()(x64).shape
    dy64 = torch.randn(y_shape, generator=gen, dtype=torch.float64)
    out = {}
    for dtype in (torch.float64, torch.float32):
        m = copy.deepcopy(ref).to(dtype)
        m.train(c["train"])
        p = c["name"] + "/"
        t = {p + "param/" + k: v.detach().clone() for k, v in m.state_dict().items()}
        x = x64.to(dtype).detach().clone().requires_grad_(True)
        dy = dy64.to(dtype)
        y = m(x)
        y.backward(dy)
        t[p + "x"], t[p + "dy"], t[p + "y"], t[p + "dx"] = x.detach(), dy, y.detach(), x.grad
        for k, v in m.named_parameters():
            t[p + "grad/" + k] = v.grad if v.grad is not None else torch.zeros_like(v)
        for k, v in m.named_buffers():
            t[p + "buffer_after/" + k] = v.detach().clone()
        out[dtype] = t
    options = dict(c["options"], train=c["train"], parameters=[k for k, _ in ref.named_parameters()],
                   buffers=[k for k, _ in ref.named_buffers()])
    return out, options


def main():
    # torch warns that an even kernel with padding='same' pads a copy of the input; that is the point of the case.
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
    torch.manual_seed(0)
    files = {torch.float64: {}, torch.float32: {}}
    all_options = {}
    for c in CASES:
        # One generator per case, seeded by its name: adding a case leaves the others' numbers unchanged.
        gen = torch.Generator().manual_seed(zlib.crc32(c["name"].encode()))
        tensors, options = run(c, gen)
        for dtype in files:
            files[dtype].update(tensors[dtype])
        all_options[c["name"]] = options
    os.makedirs(os.path.join(HERE, "fixtures"), exist_ok=True)
    for dtype, suffix in ((torch.float64, "f64"), (torch.float32, "f32")):
        meta = {"cases": json.dumps(all_options, sort_keys=True), "dtype": TORCH_DTYPES[dtype],
                "generator": "tests/parity/make_fixtures.py", "torch": torch.__version__}
        path = os.path.join(HERE, "fixtures", "layers_%s.safetensors" % suffix)
        write_safetensors(path, files[dtype], meta)
        print("%s: %d cases, %d tensors, %d bytes" % (path, len(CASES), len(files[dtype]), os.path.getsize(path)))


if __name__ == "__main__":
    main()
