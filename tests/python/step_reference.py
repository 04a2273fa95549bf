#!/usr/bin/env python3
"""PyTorch's side of the step-for-step equality test (tests/equality.rs).

usage: step_reference.py RUN_DIR OUT_DIR [--replays exact,WHAT,...]

RUN_DIR is a reslab run made with `reslab train ... --dump-steps K`: its config.toml says which
net and optimiser, steps/initial.safetensors holds the initial weights (PyTorch names) and
steps/batches.safetensors the K augmented batches reslab trained on (`images`, `labels`) with the
learning rate of each step (`lr`). This script builds the same CIFAR net the way the public
PyTorch reproduction does (akamaster/pytorch_resnet_cifar10: its names, its option-A LambdaLayer,
its avg_pool2d), loads the weights with strict=True, and trains K steps in train mode with
F.cross_entropy and torch.optim.SGD(lr, momentum, weight_decay) on those batches, in the memory
layout and with the thread count of the run; a bf16 run's forward pass runs under
torch.autocast("cpu", dtype=torch.bfloat16), its loss on the logits cast to fp32. Each replay
writes `loss` (K float64 losses) and the final state dict (weights, BN running statistics) to
OUT_DIR/<replay>.safetensors.

--replays names the replays, in one process (importing torch once): `exact` (the default) is the
protocol as the run has it; each other one changes one thing of it, so the test can show that
the comparison catches it: weight-decay (0 instead of the run's), momentum (0.95), bn-momentum (0.01, Keras's 0.99),
bn-eps (1e-3, Keras's), padding (option A pads all new channels after the input's instead of
equally around it), update-rule (Nesterov momentum), loss (label smoothing 0.1).
"""
import argparse
import sys
import tomllib
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
from torch_cifar import CifarResNet  # noqa: E402

BREAKS = ["weight-decay", "momentum", "bn-momentum", "bn-eps", "padding", "update-rule", "loss"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--replays", default="exact", help="comma-separated: exact and/or " + ", ".join(BREAKS))
    args = p.parse_args()
    replays = args.replays.split(",")
    unknown = [r for r in replays if r != "exact" and r not in BREAKS]
    if unknown:
        p.error(f"unknown replay {unknown[0]!r}; expected exact or one of {', '.join(BREAKS)}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for replay in replays:
        replay_run(args.run_dir, args.out_dir / f"{replay}.safetensors", None if replay == "exact" else replay)


def replay_run(run_dir, out, broken):
    """Trains the run's K batches in PyTorch with `broken` changed (None: nothing) and writes OUT."""
    text = (run_dir / "config.toml").read_text()
    config = tomllib.loads(text)
    spec, optim = config["model"], config.get("optim", {})
    assert spec["family"] == "cifar", "the reference builds the CIFAR family"
    lr_momentum = optim.get("momentum", 0.9)
    weight_decay = optim.get("weight_decay", 1e-4)
    threads = config.get("threads", 0)
    if threads:
        torch.set_num_threads(threads)
    channels_last = config.get("channels_last", True)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    bf16 = config.get("precision", "fp32") == "bf16"

    bn_momentum = 0.01 if broken == "bn-momentum" else 0.1
    bn_eps = 1e-3 if broken == "bn-eps" else 1e-5

    def bn(c):
        return nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum)

    option = None if spec["kind"] == "plain" else spec["shortcut"]
    model = CifarResNet(spec["depth"], option, bn, broken == "padding")
    model.load_state_dict(load_file(run_dir / "steps" / "initial.safetensors"), strict=True)
    model = model.to(memory_format=fmt)
    model.train()

    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=0.1,
        momentum=0.95 if broken == "momentum" else lr_momentum,
        weight_decay=0.0 if broken == "weight-decay" else weight_decay,
        nesterov=broken == "update-rule",
    )
    batches = load_file(run_dir / "steps" / "batches.safetensors")
    images, labels, lrs = batches["images"], batches["labels"], batches["lr"]
    losses = []
    for step in range(images.shape[0]):
        for group in optimizer.param_groups:
            group["lr"] = lrs[step].item()
        x = images[step].contiguous(memory_format=fmt)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), labels[step], label_smoothing=0.1 if broken == "loss" else 0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    state = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    state["loss"] = torch.tensor(losses, dtype=torch.float64)
    save_file(state, out)
    name = f"{spec['kind']}-{spec['depth']} ({broken or 'exact'})"
    print(f"{name}: {len(losses)} steps, losses {losses[0]:.6f} .. {losses[-1]:.6f}")


if __name__ == "__main__":
    main()
