#!/usr/bin/python3
"""Writes the optimizer references of tests/parity/optim.cpp: torch.optim.AdamW, Adam and SGD (foreach=False)
with the testbed's two parameter groups (weights; biases and 1-D parameters with weight decay 0), learning
rate and weight decay changing every step, one tensor without a gradient during the first two steps (the
frozen last layer), and optionally torch.nn.utils.clip_grad_norm_ before each step.
Run with Debian's python3-torch: /usr/bin/python3 tests/parity/make_optim_fixtures.py

fixtures/optim_f64.safetensors and fixtures/optim_f32.safetensors hold the same runs in float64 and float32:
init/<param>, grad/<step>/<param> (absent while the parameter has no gradient), and per case <c>:
<c>/final/<param>, <c>/state/<param>/<key> (torch's optimizer state tensors), <c>/norm (the total gradient
norm of each step, as clip_grad_norm_ returns it). Metadata: "params" ([name, shape] in registration order),
"steps" (per step: which parameters have a gradient), "cases" ({case: options, per-step hyper-parameters,
per-parameter step counts, the parameter names of each group of the optimizer's state_dict}).
"""
import json
import os

import torch

from safetensors_file import TORCH_DTYPES, write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))

# Registration order = named_parameters() order. Groups: weights = conv.weight, lin.weight, tok (3-D, as a
# ViT token); biases = norm.weight (1-D), lin.bias.
PARAMS = [("conv.weight", [2, 3, 3, 3]), ("norm.weight", [4]), ("lin.weight", [5, 3]), ("lin.bias", [5]),
          ("tok", [1, 2, 3])]
N_STEPS = 4
FROZEN = {"lin.weight": [0, 1]}  # steps without a gradient
# Gradient scale per step: with clip 1.0 the norm is clipped on steps 0 and 2 and left alone on 1 and 3.
GRAD_SCALE = [0.5, 0.05, 1.0, 0.1]

ADAM_HYPER = dict(lr_w=[1e-2, 5e-3, 2e-2, 1e-3], wd_w=[0.04, 0.1, 0.2, 0.3], lr_b=[2e-2, 1e-2, 5e-3, 1e-3])
SGD_HYPER = dict(lr_w=[0.1, 0.05, 0.2, 0.01], wd_w=[0.04, 0.1, 0.2, 0.3], lr_b=[0.2, 0.1, 0.05, 0.01])

CASES = {
    "adamw": dict(kind="adamw", clip=0.0),
    "adamw_clip": dict(kind="adamw", clip=1.0),
    "adamw_betas": dict(kind="adamw", clip=0.0, beta1=0.8, beta2=0.99, eps=1e-6),
    "adam": dict(kind="adam", clip=0.0),
    "adam_clip": dict(kind="adam", clip=1.0),
    "sgd": dict(kind="sgd", clip=0.0, momentum=0.9),
    "sgd_clip": dict(kind="sgd", clip=1.0, momentum=0.9),
    "sgd_nomomentum": dict(kind="sgd", clip=0.0, momentum=0.0),
}


def is_bias(name, shape):
    return name.endswith("bias") or len(shape) == 1


def draw():
    """Initial values and per-step gradients in float64, the same for every case."""
    gen = torch.Generator().manual_seed(1234)
    init = {n: torch.randn(s, generator=gen, dtype=torch.float64) for n, s in PARAMS}
    grads = []
    for step in range(N_STEPS):
        g = {}
        for n, s in PARAMS:
            values = torch.randn(s, generator=gen, dtype=torch.float64) * GRAD_SCALE[step]
            if step not in FROZEN.get(n, []):
                g[n] = values
        grads.append(g)
    return init, grads


def run(case, init, grads, dtype):
    params = {n: torch.nn.Parameter(init[n].to(dtype).clone()) for n, _ in PARAMS}
    weights = [params[n] for n, s in PARAMS if not is_bias(n, s)]
    biases = [params[n] for n, s in PARAMS if is_bias(n, s)]
    # The constructor lr is overwritten before every step (the testbed constructs with inf), so its value is unused.
    groups = [{"params": weights}, {"params": biases, "weight_decay": 0.0}]
    kind = case["kind"]
    hyper = SGD_HYPER if kind == "sgd" else ADAM_HYPER
    if kind == "sgd":
        opt = torch.optim.SGD(groups, lr=1.0, momentum=case["momentum"], foreach=False)
    else:
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        opt = cls(groups, lr=1.0, betas=(case.get("beta1", 0.9), case.get("beta2", 0.999)), eps=case.get("eps", 1e-8),
                  foreach=False)
    norms = []
    for step in range(N_STEPS):
        for n, _ in PARAMS:
            params[n].grad = grads[step][n].to(dtype).clone() if n in grads[step] else None
        if case["clip"] > 0:
            norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), case["clip"])))
        else:
            with_grad = [p.grad for p in params.values() if p.grad is not None]
            norms.append(float(torch.norm(torch.stack([torch.norm(g) for g in with_grad]))))
        opt.param_groups[0]["lr"] = hyper["lr_w"][step]
        opt.param_groups[0]["weight_decay"] = hyper["wd_w"][step]
        opt.param_groups[1]["lr"] = hyper["lr_b"][step]
        opt.param_groups[1]["weight_decay"] = 0.0
        opt.step()
    tensors = {"%s/norm" % case["name"]: torch.tensor(norms, dtype=dtype)}
    for n, _ in PARAMS:
        tensors["%s/final/%s" % (case["name"], n)] = params[n].detach().clone()
    steps = {}
    by_id = {id(p): n for n, p in params.items()}
    for p, st in opt.state.items():
        n = by_id[id(p)]
        for key, value in st.items():
            if key == "step":
                steps[n] = int(value.item())
            elif value is not None:
                tensors["%s/state/%s/%s" % (case["name"], n, key)] = value.detach().clone()
    if kind == "sgd":  # torch's SGD keeps no step; every parameter counts the steps it had a gradient
        steps = {n: sum(n in g for g in grads) for n, _ in PARAMS}
    # state_dict() numbers the parameters group after group; map its integer ids back to names.
    sd = opt.state_dict()["param_groups"]
    ids = dict(enumerate(by_id[id(p)] for g in opt.param_groups for p in g["params"]))
    options = dict(case)
    del options["name"]
    options.update(hyper=[dict(lr_w=hyper["lr_w"][s], wd_w=hyper["wd_w"][s], lr_b=hyper["lr_b"][s], wd_b=0.0)
                          for s in range(N_STEPS)],
                   step_counts=steps, state_dict_groups=[[ids[i] for i in g["params"]] for g in sd])
    return tensors, options


def main():
    init, grads = draw()
    for dtype, suffix in ((torch.float64, "f64"), (torch.float32, "f32")):
        tensors, cases = {}, {}
        for n, _ in PARAMS:
            tensors["init/" + n] = init[n].to(dtype)
            for step in range(N_STEPS):
                if n in grads[step]:
                    tensors["grad/%d/%s" % (step, n)] = grads[step][n].to(dtype)
        for name, case in CASES.items():
            t, options = run(dict(case, name=name), init, grads, dtype)
            tensors.update(t)
            cases[name] = options
        meta = {"params": json.dumps(PARAMS), "steps": json.dumps([sorted(g) for g in grads]),
                "cases": json.dumps(cases, sort_keys=True), "dtype": TORCH_DTYPES[dtype],
                "generator": "tests/parity/make_optim_fixtures.py", "torch": torch.__version__}
        path = os.path.join(HERE, "fixtures", "optim_%s.safetensors" % suffix)
        write_safetensors(path, tensors, meta)
        print("%s: %d cases, %d tensors, %d bytes" % (path, len(cases), len(tensors), os.path.getsize(path)))


if __name__ == "__main__":
    main()
