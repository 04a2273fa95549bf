#!/usr/bin/env python3
"""The per-pixel mean of CIFAR-10's training images, computed with NumPy in float64 straight from
the binary records (tests/data.rs compares reslab's with it).

usage: pixel_mean.py CIFAR_ARCHIVE_OR_FOLDER OUT.safetensors   (writes `mean`, 1 x 3 x 32 x 32, float64)
"""
import sys
from pathlib import Path

from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
from torch_cifar import load_cifar, pixel_mean  # noqa: E402

if __name__ == "__main__":
    train_images = load_cifar(sys.argv[1])[0]
    save_file({"mean": pixel_mean(train_images)}, sys.argv[2])
    print(f"pixel mean of {len(train_images)} training images written to {sys.argv[2]}")
