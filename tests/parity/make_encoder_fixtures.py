#!/usr/bin/python3
"""Writes the PyTorch references of dino's encoder tests (tests/parity/encoders.cpp, tests/unit/encoders.cpp):
fixtures/encoders_f64.safetensors and fixtures/encoders_f32.safetensors, the same cases computed by torch in
float64 and in float32. Run with Debian's python3-torch:
    /usr/bin/python3 tests/parity/make_encoder_fixtures.py

The encoders are built as the testbed builds them (torchvision v0.14 ResNet BasicBlocks and VGG feature
layers, the README-era ConvNet) under torchvision's state_dict names. Parameters, inputs and cotangents are
not stored: they are a pattern that the C++ test recomputes bit for bit (see pattern()), which keeps the
files small although vgg11_bn alone has 9.2 M parameters.

Per case <c>: <c>/y, <c>/dx and <c>/grad/<parameter> (whole when small, else sampled: see store()), and
for some cases <c>/buffer_after/<buffer> (BatchNorm running statistics after the one train-mode forward). Metadata: "cases" = {case: {encoder, norm_layer,
tiny_input, x_shape, parameters, buffers}}, "names" = {label: {encoder options, parameters, buffers}} for the
name-and-order test, and "counts" = {label: number of parameters} (printed, copied into the unit test).
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import BasicBlock

from safetensors_file import TORCH_DTYPES, write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
# Tensors with more elements than their limit are stored as SAMPLES scattered elements and their L2 norm.
WHOLE_LIMIT = 256  # gradients and buffers
WHOLE_LIMIT_DX = 5000  # the input gradient (whole for the 28x28 ConvNet case)
SAMPLES = 128
SAMPLE_STRIDE = 1000003  # prime: k * stride mod n visits distinct, scattered elements


# --- the --enc_norm_layer factory (spec 3.7) ----------------------------------------------------------------
NORMS = {
    "BatchNorm": lambda c: nn.BatchNorm2d(c),
    "InstanceNorm": lambda c: nn.GroupNorm(c, c),
    "GroupNorm8": lambda c: nn.GroupNorm(c // 8, c),
    "LayerNorm": lambda c: nn.GroupNorm(1, c),
    "Identity": lambda c: nn.Identity(),
}


# --- encoders -----------------------------------------------------------------------------------------------
class ConvNet(nn.Module):
    """README-era convnet_W_D[e]: conv1 -> relu1 -> block [MaxPool, (conv, norm, ReLU) x (D-1), tail conv]
    -> adaptive 2x2 average pool -> flatten."""

    def __init__(self, width, depth, tail, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding="same")
        self.relu1 = nn.ReLU()
        layers = [nn.MaxPool2d(2, 2)] if depth > 1 or tail else []
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width, 3, padding="same"), NORMS[norm](width), nn.ReLU()]
        if tail:
            layers.append(nn.Conv2d(width, width, 3, padding="same"))
        self.block = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))

    def forward(self, x):
        return torch.flatten(self.avgpool(self.block(self.relu1(self.conv1(x)))), 1)


class ResNet(nn.Module):
    """torchvision's ResNet with BasicBlocks and its attribute names, any number of stages, fc removed."""

    def __init__(self, layers, planes, tiny_input, norm):
        super().__init__()
        norm_layer = NORMS[norm]
        if tiny_input:
            self.conv1 = nn.Conv2d(3, planes, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, planes, 7, 2, 3, bias=False)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if tiny_input else nn.MaxPool2d(3, 2, 1)
        cin = planes
        for k, n in enumerate(layers):
            blocks = []
            for j in range(n):
                stride = 2 if k > 0 and j == 0 else 1
                down = None
                if stride != 1 or cin != planes:
                    down = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), norm_layer(planes))
                blocks.append(BasicBlock(cin, planes, stride, down, norm_layer=norm_layer))
                cin = planes
            setattr(self, "layer%d" % (k + 1), nn.Sequential(*blocks))
            planes *= 2
        self.n_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for k in range(self.n_stages):
            x = getattr(self, "layer%d" % (k + 1))(x)
        return torch.flatten(self.avgpool(x), 1)


class VGG(nn.Module):
    """torchvision's VGG features, flattened (no avgpool, no classifier); norm after every conv if given."""

    def __init__(self, cfg, norm):
        super().__init__()
        if norm in (None, "BatchNorm"):
            self.features = torchvision.models.vgg.make_layers(cfg, batch_norm=norm is not None)
        else:
            layers, cin = [], 3
            for v in cfg:
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(cin, v, 3, padding=1), NORMS[norm](v), nn.ReLU()]
                    cin = v
            self.features = nn.Sequential(*layers)

    def forward(self, x):
        return torch.flatten(self.features(x), 1)


def build(name, norm=None, tiny_input=False):
    """The encoder the registry builds for --enc name (aliases resolved), --enc_norm_layer norm."""
    name = {"ConvNet": "convnet_16_2", "ResNet": "resnet18", "VGG": "vgg11"}.get(name, name)
    if name.startswith("convnet_"):
        _, w, d = name.split("_")
        return ConvNet(int(w), int(d.rstrip("e")), d.endswith("e"), norm or "BatchNorm")
    resnets = {"resnet18": ([2, 2, 2, 2], 64, tiny_input), "resnet34": ([3, 4, 6, 3], 64, tiny_input),
               "resnet20": ([3, 3, 3], 16, True), "resnet56": ([9, 9, 9], 16, True)}
    if name in resnets:
        layers, planes, tiny = resnets[name]
        return ResNet(layers, planes, tiny, norm or "BatchNorm")
    if name.startswith("vgg"):
        cfg = torchvision.models.vgg.cfgs[{"11": "A", "13": "B", "16": "D", "19": "E"}[name[3:5]]]
        return VGG(cfg, norm or ("BatchNorm" if name.endswith("_bn") else None))
    if name in ("flatten", "Flatten"):
        return nn.Flatten(1)
    raise ValueError(name)


# --- the pattern shared with the C++ test ------------------------------------------------------------------
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def mix64(z):
    """SplitMix64's finaliser on uint64 arrays, wrapping as C++ does (mix64 in tests/parity/encoders.cpp)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def pattern_unit(key, n):
    """n values in [-1, 1): 2 u - 1 with u = (mix64(key << 32 | i) >> 11) 2^-53, exact in float64."""
    with np.errstate(over="ignore"):
        h = mix64((np.uint64(key) << np.uint64(32)) | np.arange(n, dtype=np.uint64))
    u = (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return 2.0 * u - 1.0


def pattern(key, name, shape):
    """Parameter `key` (1 + its index in named_parameters()): conv weights U(+-sqrt(6 / fan_in)) (kaiming's
    variance), 1-d weights 1 + U(+-0.25), biases U(+-0.25)."""
    n = int(np.prod(shape))
    v = pattern_unit(key, n)
    if len(shape) > 1:
        v = v * math.sqrt(6.0 / (n // shape[0]))
    elif name.endswith("weight"):
        v = 1.0 + 0.25 * v
    else:
        v = 0.25 * v
    return torch.from_numpy(v.reshape(shape))


X_KEY, DY_KEY = 0xF000, 0xF001


# --- cases --------------------------------------------------------------------------------------------------
CASES = [
    # name, encoder, norm override, tiny_input, x shape, store the buffers after the forward
    ("convnet_16_2e", "convnet_16_2e", None, False, [2, 3, 28, 28], True),
    ("resnet20", "resnet20", None, False, [2, 3, 32, 32], True),
    ("resnet20_gn8", "resnet20", "GroupNorm8", False, [2, 3, 32, 32], False),
    ("vgg11_bn", "vgg11_bn", None, False, [2, 3, 32, 32], True),
    # The 7x7 stride-2 stem and its max-pool, on a size that is not a power of two.
    ("resnet18", "resnet18", None, False, [2, 3, 40, 40], False),
]


def sample_index(n):
    k = np.arange(min(n, SAMPLES), dtype=np.int64)
    return (k * SAMPLE_STRIDE) % n


def store(out, key, t, limit=WHOLE_LIMIT):
    """Whole when small; else <key>/sample (SAMPLES scattered elements) and <key>/norm (L2 norm, shape [1])."""
    t = t.detach().contiguous()
    if t.numel() <= limit:
        out[key] = t.clone()
    else:
        flat = t.reshape(-1)
        out[key + "/sample"] = flat[torch.from_numpy(sample_index(flat.numel()))].clone()
        out[key + "/norm"] = flat.norm().reshape(1)


def run_case(name, enc, norm, tiny, x_shape, with_buffers):
    torch.manual_seed(0)
    base = build(enc, norm, tiny).double()
    with torch.no_grad():
        for key, (pname, p) in enumerate(base.named_parameters(), 1):
            p.copy_(pattern(key, pname, tuple(p.shape)))
    x64 = torch.from_numpy(2.0 * pattern_unit(X_KEY, int(np.prod(x_shape)))).reshape(x_shape)
    out = {}
    for dtype in (torch.float64, torch.float32):
        m = build(enc, norm, tiny).to(dtype)
        m.load_state_dict({k: v.to(dtype) for k, v in base.state_dict().items()})
        m.train()
        x = x64.to(dtype).clone().requires_grad_(True)
        y = m(x)
        dy = torch.from_numpy(pattern_unit(DY_KEY, y.numel())).reshape(y.shape).to(dtype)
        y.backward(dy)
        t = {}
        store(t, name + "/y", y)
        store(t, name + "/dx", x.grad, WHOLE_LIMIT_DX)
        for k, p in m.named_parameters():
            store(t, name + "/grad/" + k, p.grad)
        for k, b in m.named_buffers():
            if with_buffers and b.dtype != torch.int64:
                store(t, name + "/buffer_after/" + k, b)
        out[dtype] = t
    opts = {"encoder": enc, "norm_layer": norm or "", "tiny_input": tiny, "x_shape": x_shape,
            "with_buffers": with_buffers,
            "parameters": [k for k, _ in base.named_parameters()],
            "buffers": [k for k, b in base.named_buffers() if b.dtype != torch.int64],
            "counters": [k for k, b in base.named_buffers() if b.dtype == torch.int64]}
    return out, opts


# Encoders whose parameter and buffer names (with the prefix "enc.") the C++ test compares in order.
NAMED = [
    ("resnet20", "resnet20", None, False),
    ("resnet20+GroupNorm8", "resnet20", "GroupNorm8", False),
    ("resnet18+tiny_input", "resnet18", None, True),
    ("resnet18+Identity", "resnet18", "Identity", False),
    ("convnet_16_2e", "convnet_16_2e", None, False),
    ("convnet_32_3+LayerNorm", "convnet_32_3", "LayerNorm", False),
    ("vgg11_bn", "vgg11_bn", None, False),
    ("vgg11+Identity", "vgg11", "Identity", False),
    ("vgg13_bn+InstanceNorm", "vgg13_bn", "InstanceNorm", False),
]


def names_of(enc, norm, tiny):
    m = build(enc, norm, tiny)
    return {"encoder": enc, "norm_layer": norm or "", "tiny_input": tiny,
            "parameters": ["enc." + k for k, _ in m.named_parameters()],
            "buffers": ["enc." + k for k, b in m.named_buffers() if b.dtype != torch.int64],
            "counters": ["enc." + k for k, b in m.named_buffers() if b.dtype == torch.int64]}


def all_encoder_names():
    names = ["convnet_%d_%d%s" % (w, d, e) for w in (16, 32) for d in range(1, 6) for e in ("", "e")]
    names += ["ConvNet", "resnet18", "resnet34", "resnet20", "resnet56", "ResNet"]
    names += [v + s for v in ("vgg11", "vgg13", "vgg16", "vgg19") for s in ("", "_bn")]
    return names + ["VGG", "Flatten", "flatten"]


def counts():
    c = {}
    for n in all_encoder_names():
        c[n] = sum(p.numel() for p in build(n).parameters())
    for n, norm, tiny in (("resnet18", None, True), ("resnet20", "GroupNorm8", False),
                          ("resnet18", "Identity", False), ("vgg11", "BatchNorm", False),
                          ("vgg11_bn", "LayerNorm", False), ("convnet_32_5e", "InstanceNorm", False)):
        c["%s+%s" % (n, norm or "tiny_input")] = sum(p.numel() for p in build(n, norm, tiny).parameters())
    # torchvision's own resnet18 without its classifier, the number the unit test quotes.
    tv = torchvision.models.resnet18()
    tv.fc = nn.Identity()
    c["torchvision.resnet18-fc"] = sum(p.numel() for p in tv.parameters())
    return c


def main():
    files = {torch.float64: {}, torch.float32: {}}
    cases = {}
    for name, enc, norm, tiny, x_shape, with_buffers in CASES:
        tensors, opts = run_case(name, enc, norm, tiny, x_shape, with_buffers)
        for dtype in files:
            files[dtype].update(tensors[dtype])
        cases[name] = opts
    named = {label: names_of(enc, norm, tiny) for label, enc, norm, tiny in NAMED}
    cnt = counts()
    for k, v in cnt.items():
        print("%-26s %d" % (k, v))
    os.makedirs(os.path.join(HERE, "fixtures"), exist_ok=True)
    for dtype, suffix in ((torch.float64, "f64"), (torch.float32, "f32")):
        meta = {"cases": json.dumps(cases, sort_keys=True), "names": json.dumps(named, sort_keys=True),
                "counts": json.dumps(cnt, sort_keys=True), "dtype": TORCH_DTYPES[dtype],
                "generator": "tests/parity/make_encoder_fixtures.py", "torch": torch.__version__,
                "torchvision": torchvision.__version__}
        path = os.path.join(HERE, "fixtures", "encoders_%s.safetensors" % suffix)
        write_safetensors(path, files[dtype], meta)
        print("%s: %d cases, %d tensors, %d bytes" % (path, len(cases), len(files[dtype]), os.path.getsize(path)))


if __name__ == "__main__":
    main()
