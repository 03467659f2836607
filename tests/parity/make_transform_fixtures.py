#!/usr/bin/python3
"""Writes fixtures/transforms.safetensors, the torchvision 0.14 / Pillow references of dino's image transforms
(tests/parity/transforms.cpp). Run with Debian's python3-torch: /usr/bin/python3 tests/parity/make_transform_fixtures.py

Tensors: img/<name> (input images, uint8 [H, W, 3]) and out/<case> (torchvision's output on the PIL image:
uint8 [H, W, 3], or float32 / float64 [3, H, W] for ToTensor + Normalize). Metadata:
  "cases"  JSON {case: {"op", "input", parameters}}.
  "tables" JSON of exhaustive checks, as CRC-32s (zlib) of PIL's output bytes, so that they stay small:
           luma / rgb2hsv: convert('L') / convert('HSV') of every RGB colour, one CRC per red value (65536
           colours in (g, b) order); hsv2rgb: convert('RGB') of every HSV triple, one CRC per hue;
           blend: Image.blend of every (im1, im2) byte pair (256 x 256, im1 = row) per alpha;
           resize: img.crop(box).resize((ow, oh), BILINEAR) of img/sweep48 over a sweep of box and output sizes.
"""
import json
import os
import zlib

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as F
from PIL import Image

from safetensors_file import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "transforms.safetensors")

tensors = {}
cases = {}
tables = {}


def crc(a):
    return zlib.crc32(np.ascontiguousarray(a).tobytes()) & 0xFFFFFFFF


def rgb(a):
    return Image.fromarray(np.ascontiguousarray(a, dtype=np.uint8), "RGB")


def u8(img):
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


# --- inputs ---------------------------------------------------------------------------------------------------
rng = np.random.RandomState(20240514)
images = {}


def image(name, a):
    images[name] = a.astype(np.uint8)
    tensors["img/" + name] = images[name]


image("rgb24x20", rng.randint(0, 256, (24, 20, 3)))
image("cifar32", rng.randint(0, 256, (32, 32, 3)))
image("rgb37x24", rng.randint(0, 256, (37, 24, 3)))
image("rgb64", rng.randint(0, 256, (64, 64, 3)))
g = rng.randint(0, 256, (28, 28))
g[rng.rand(28, 28) < 0.4] = 0  # MNIST-like: many black pixels
image("grey28", np.repeat(g[:, :, None], 3, axis=2))
g = rng.randint(0, 256, (64, 64))
image("grey64", np.repeat(g[:, :, None], 3, axis=2))
# A smooth image: resampling and blur keep values near halves more often than on noise.
yy, xx = np.mgrid[0:32, 0:32]
image("smooth32", np.stack([(xx * 8) % 256, (yy * 8) % 256, ((xx + yy) * 4) % 256], axis=2))
image("sweep48", rng.randint(0, 256, (48, 48, 3)))


def case(name, op, inp, out, **params):
    assert name not in cases
    cases[name] = dict(op=op, input=inp, **params)
    tensors["out/" + name] = out


# --- geometry -------------------------------------------------------------------------------------------------
def resized_crop(name, inp, top, left, h, w, oh, ow):
    out = F.resized_crop(rgb(images[inp]), top, left, h, w, [oh, ow], F.InterpolationMode.BILINEAR)
    case(name, "resized_crop", inp, u8(out), top=top, left=left, height=h, width=w, out_h=oh, out_w=ow)


resized_crop("rc_up_10x13_to_28", "rgb24x20", 3, 4, 10, 13, 28, 28)
resized_crop("rc_down_grey28_to_12", "grey28", 0, 0, 28, 28, 12, 12)
resized_crop("rc_down_cifar_to_20", "cifar32", 0, 0, 32, 32, 20, 20)
resized_crop("rc_down_cifar_box_to_20", "cifar32", 2, 5, 27, 25, 20, 20)
resized_crop("rc_mixed_30x17_to_16", "cifar32", 1, 3, 30, 17, 16, 16)
resized_crop("rc_rrc_like_20x14_to_32", "cifar32", 5, 2, 20, 14, 32, 32)
resized_crop("rc_crop_only", "cifar32", 4, 4, 20, 20, 20, 20)
resized_crop("rc_only_horizontal", "cifar32", 0, 0, 32, 20, 32, 28)
resized_crop("rc_only_vertical", "cifar32", 3, 0, 29, 32, 11, 32)
resized_crop("rc_grey28_to_5x7", "grey28", 0, 0, 28, 28, 5, 7)
resized_crop("rc_pixel_to_4", "rgb24x20", 10, 10, 1, 1, 4, 4)
resized_crop("rc_smooth_to_96", "smooth32", 3, 1, 25, 29, 96, 96)
resized_crop("rc_smooth_to_9", "smooth32", 0, 0, 32, 32, 9, 9)

for name, inp, size in [("resize_cifar_20", "cifar32", 20), ("resize_24x20_28", "rgb24x20", 28),
                        ("resize_37x24_28", "rgb37x24", 28), ("resize_grey28_64", "grey28", 64),
                        ("resize_grey28_28", "grey28", 28), ("resize_37x24_13", "rgb37x24", 13)]:
    case(name, "resize_shorter", inp, u8(F.resize(rgb(images[inp]), size)), size=size)

case("hflip_24x20", "hflip", "rgb24x20", u8(F.hflip(rgb(images["rgb24x20"]))))
case("hflip_cifar", "hflip", "cifar32", u8(F.hflip(rgb(images["cifar32"]))))

for name, inp, size, top, left in [("padcrop_cifar_0_0", "cifar32", 32, 0, 0), ("padcrop_cifar_8_8", "cifar32", 32, 8, 8),
                                   ("padcrop_cifar_3_7", "cifar32", 32, 3, 7), ("padcrop_cifar_8_0", "cifar32", 32, 8, 0),
                                   ("padcrop_24x20_28", "rgb24x20", 28, 2, 0), ("padcrop_grey28_32", "grey28", 32, 4, 1)]:
    padded = F.pad(rgb(images[inp]), 4, fill=0)
    case(name, "pad_crop", inp, u8(F.crop(padded, top, left, size, size)), size=size, pad=4, top=top, left=left)

# --- colour ---------------------------------------------------------------------------------------------------
for inp in ["cifar32", "grey28", "smooth32"]:
    for f in [0.0, 0.6, 0.83, 1.0, 1.2345, 1.4, 1.9]:
        case(f"brightness_{inp}_{f}", "brightness", inp, u8(F.adjust_brightness(rgb(images[inp]), f)), factor=f)
    for f in [0.0, 0.6, 0.77, 1.0, 1.31, 1.4, 2.5]:
        case(f"contrast_{inp}_{f}", "contrast", inp, u8(F.adjust_contrast(rgb(images[inp]), f)), factor=f)
    for f in [0.0, 0.8, 0.93, 1.0, 1.2, 1.7]:
        case(f"saturation_{inp}_{f}", "saturation", inp, u8(F.adjust_saturation(rgb(images[inp]), f)), factor=f)
    for f in [-0.5, -0.1, -0.05, -0.013, 0.0, 0.02, 0.0731, 0.1, 0.37, 0.5]:
        case(f"hue_{inp}_{f}", "hue", inp, u8(F.adjust_hue(rgb(images[inp]), f)), factor=f)
    case(f"grayscale_{inp}", "grayscale", inp, u8(F.rgb_to_grayscale(rgb(images[inp]), num_output_channels=3)))
    for t in [0, 100, 128, 255, 256]:
        case(f"solarize_{inp}_{t}", "solarize", inp, u8(F.solarize(rgb(images[inp]), t)), threshold=t)

# --- blur -----------------------------------------------------------------------------------------------------
for inp, k, sigmas in [("rgb64", 9, [0.1, 0.7, 1.3, 2.0]), ("grey64", 9, [1.0, 1.7]), ("smooth32", 9, [0.45, 1.9]),
                       ("cifar32", 3, [0.5])]:
    for s in sigmas:
        out = F.gaussian_blur(rgb(images[inp]), [k, k], [s, s])
        case(f"blur_{inp}_k{k}_s{s}", "gaussian_blur", inp, u8(out), kernel_size=k, sigma=s)

# --- ToTensor + Normalize (+ ConvertImageDtype(float64) in the testbed's float64 mode) -------------------------
for inp, mean, std in [("cifar32", (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
                       ("grey28", (0.1307,) * 3, (0.3081,) * 3)]:
    x = F.normalize(F.to_tensor(rgb(images[inp])), mean, std)
    case(f"normalize_{inp}_f32", "normalize", inp, x.numpy().astype(np.float32), mean=mean, std=std, dtype="float32")
    x64 = F.convert_image_dtype(x, torch.float64)
    case(f"normalize_{inp}_f64", "normalize", inp, x64.numpy(), mean=mean, std=std, dtype="float64")

# --- exhaustive tables ----------------------------------------------------------------------------------------
every = np.stack(np.meshgrid(np.arange(256), np.arange(256), np.arange(256), indexing="ij"), axis=3)
every = every.reshape(4096, 4096, 3).astype(np.uint8)  # colour r * 65536 + g * 256 + b, row-major
lum = np.asarray(rgb(every).convert("L")).reshape(256, 65536)
tables["luma"] = [crc(lum[r]) for r in range(256)]
hsv = np.asarray(rgb(every).convert("HSV")).reshape(256, 65536 * 3)
tables["rgb2hsv"] = [crc(hsv[r]) for r in range(256)]
back = np.asarray(Image.frombytes("HSV", (4096, 4096), every.tobytes()).convert("RGB")).reshape(256, 65536 * 3)
tables["hsv2rgb"] = [crc(back[h]) for h in range(256)]

rows, cols = np.mgrid[0:256, 0:256].astype(np.uint8)
im1, im2 = Image.fromarray(rows, "L"), Image.fromarray(cols, "L")
alphas = [0.0, 0.1, 0.3, 0.6, 0.77, 0.8123, 0.999, 1.0, 1.0001, 1.2345, 1.4, 1.9, 2.5]
tables["blend"] = [dict(alpha=a, crc=crc(np.asarray(Image.blend(im1, im2, a)))) for a in alphas]

# Resize sweep: every (box height, box width) pairing of sizes 1..40 against output sizes, both directions mixed.
sweep = rgb(images["sweep48"])
resize_rows = []
for a in range(1, 41):
    for b in range(1, 41):
        bh, bw = a, (a * 7 + b * 3) % 40 + 1
        oh, ow = b, (a * 5 + b * 11) % 45 + 1
        top, left = (a * 3) % (48 - bh + 1), (b * 5) % (48 - bw + 1)
        out = sweep.crop((left, top, left + bw, top + bh)).resize((ow, oh), Image.BILINEAR)
        resize_rows.append([top, left, bh, bw, oh, ow, crc(np.asarray(out))])
tables["resize"] = resize_rows


# --- a minimal safetensors writer -----------------------------------------------------------------------------
meta = {"cases": json.dumps(cases, sort_keys=True), "tables": json.dumps(tables, sort_keys=True),
        "versions": f"torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {Image.__version__}"}
os.makedirs(os.path.dirname(OUT), exist_ok=True)
write_safetensors(OUT, tensors, meta)
print(f"wrote {OUT}: {len(cases)} cases, {len(tensors)} tensors, {os.path.getsize(OUT)} bytes")
