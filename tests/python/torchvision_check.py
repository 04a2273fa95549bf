#!/usr/bin/env python3
"""Loads reslab-exported weights into torchvision's ResNet with strict=True and compares logits.

usage: torchvision_check.py ARCH WEIGHTS.safetensors INPUT.safetensors LOGITS.safetensors
ARCH is a torchvision.models name (resnet18, resnet34, resnet50, ...). INPUT holds `input`
(N, 3, H, W); LOGITS holds `logits`, what reslab computed in evaluation mode. Prints the largest
absolute difference and exits 1 if it exceeds 1e-3 of the largest logit, at least 1e-3 (or if
loading fails): float sums in another order differ in proportion to the values' size.
"""
import sys

import torch
import torchvision
from safetensors.torch import load_file


def main():
    arch, weights, inputs, logits = sys.argv[1:5]
    state = load_file(weights)
    num_classes = state["fc.weight"].shape[0]
    model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        ours = load_file(logits)["logits"]
        theirs = model(load_file(inputs)["input"])
    diff = (ours - theirs).abs().max().item()
    tolerance = 1e-3 * max(1.0, theirs.abs().max().item())
    print(f"{arch}: loaded strict=True; max |logit difference| = {diff:.2e} (tolerance {tolerance:.2e})")
    sys.exit(0 if diff <= tolerance else 1)


if __name__ == "__main__":
    main()
