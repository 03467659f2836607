#!/usr/bin/env python3
"""The testbed's data pipeline in torchvision 0.14 (PIL), timed on one core: source images per second.

Mirrors spec §2.2-2.4: PIL RGB image -> --augs once -> per crop RandomResizedCrop(S, scale) -> --per_crop_augs
-> ToTensor -> Normalize. The rival of bench/data_bench (see bench/run_data.sh and docs/benchmarks.md).

    /usr/bin/python3 bench/torchvision_pipeline.py [--images N] [--repeats R]

Prints one JSON line per case: {"case": ..., "images_per_s": ..., "samples": [...]}.
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

FASHION = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'


def fashion_images(n):
    """The first n Fashion-MNIST training images (the Debian package), or random ones if it is missing."""
    if os.path.exists(FASHION):
        with gzip.open(FASHION, 'rb') as f:
            raw = f.read()
        return np.frombuffer(raw, np.uint8, offset=16)[:n * 784].reshape(n, 28, 28)
    return np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def dino_aug(native_size):
    """The testbed's 'dino' augmentation: RandomChoice of three pipelines, p = 0.4/0.4/0.2; no blur below 64 px."""
    blur = native_size >= 64

    def fj():
        return [T.RandomHorizontalFlip(0.5),
                T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
                T.RandomGrayscale(0.2)]

    def gb(p):
        return T.RandomApply([T.GaussianBlur(9, (0.1, 2.0))], p=p if blur else 0.0)

    t1 = T.Compose(fj() + [gb(1.0)])
    t2 = T.Compose(fj() + [gb(0.1), T.RandomSolarize(128, p=0.2)])
    t3 = T.Compose(fj() + [gb(0.5)])
    return T.RandomChoice([t1, t2, t3], p=[0.4, 0.4, 0.2])


def multicrop(specs, per_crop, mean, std):
    crops = [T.Compose([T.RandomResizedCrop(size, scale=scale)] + per_crop + [T.ToTensor(), T.Normalize(mean, std)])
             for size, scale in specs]
    return lambda img: [c(img) for c in crops]


def cases(n):
    fm = [Image.fromarray(a).convert('RGB') for a in fashion_images(n)]
    rng = np.random.default_rng(1)
    cifar = [Image.fromarray(a) for a in rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)]
    fm_mc = [(28, (0.4, 1.0))] * 2 + [(28, (0.05, 0.4))] * 4
    yield ('fashion_2x28+4x28_per_crop_dino', fm, T.Compose([]),
           multicrop(fm_mc, [dino_aug(28)], (0.2860,) * 3, (0.3530,) * 3))
    yield ('cifar_2x32_augs_hflip_padcrop', cifar, T.Compose([T.RandomHorizontalFlip(0.5), T.RandomCrop(32, padding=4)]),
           multicrop([(32, (0.14, 1.0))] * 2, [], (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--images', type=int, default=2000, help='source images per timed pass')
    p.add_argument('--repeats', type=int, default=3, help='timed passes per case')
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for name, imgs, whole, mc in cases(a.images):
        mc(whole(imgs[0]))  # warm-up
        rates = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for img in imgs:
                mc(whole(img))
            rates.append(len(imgs) / (time.perf_counter() - t0))
        print(json.dumps({'case': name, 'images_per_s': float(np.median(rates)), 'samples': rates}), flush=True)


if __name__ == '__main__':
    main()
