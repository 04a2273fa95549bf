#!/usr/bin/env python3
"""PyTorch's side of the plain-56 start study: the first iterations of a CIFAR net trained with
the protocol reslab uses, written the way the public PyTorch reproductions write it.

He-normal (fan-out) convolutions, BN weight 1 / bias 0, nn.Linear's default; SGD lr 0.1 (no step),
momentum 0.9, weight decay 1e-4 on every parameter; batch 128, a fresh shuffle each epoch; the
per-pixel mean subtracted, then 4 zero pixels padded on each side, a random 32x32 crop and a
horizontal flip with probability 1/2. All random draws come from torch's generator seeded with
--seed (so seeds are not reslab's: the study compares distributions over seeds, not runs).

Prints one CSV line per --report-every iterations: `implementation,model,seed,iter,train_loss,train_err`,
the running mean loss and error (%) over the iterations since the previous line.

usage: torch_start.py --data cifar-10-binary.tar.gz [--depth 56] [--plain] [--iters 300] [--seed 0]
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from torch_cifar import CifarResNet, he_init, load_cifar, pixel_mean  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--depth", type=int, default=56)
    p.add_argument("--residual", action="store_true", help="option-A shortcuts (default: plain)")
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="0: torch's default")
    p.add_argument("--report-every", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_images, train_labels, _, _ = load_cifar(args.data)
    mean = torch.from_numpy(pixel_mean(train_images)).float()
    images = torch.from_numpy(train_images.copy()).float() / 255.0 - mean
    labels = torch.from_numpy(train_labels.copy())
    padded_all = F.pad(images, (4, 4, 4, 4))

    model = he_init(CifarResNet(args.depth, "A" if args.residual else None, torch.nn.BatchNorm2d, False))
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    name = f"{'resnet' if args.residual else 'plain'}-{args.depth}"

    n, batch = len(labels), args.batch_size
    per_epoch = n // batch
    order = None
    loss_sum, wrong, seen = 0.0, 0, 0
    for it in range(args.iters):
        if it % per_epoch == 0:
            order = torch.randperm(n)
        index = order[(it % per_epoch) * batch:(it % per_epoch + 1) * batch]
        rows = torch.randint(0, 9, (batch,))
        cols = torch.randint(0, 9, (batch,))
        flips = torch.rand(batch) < 0.5
        crops = []
        for k, i in enumerate(index.tolist()):
            crop = padded_all[i, :, rows[k]:rows[k] + 32, cols[k]:cols[k] + 32]
            crops.append(crop.flip(2) if flips[k] else crop)
        x = torch.stack(crops).contiguous(memory_format=torch.channels_last)
        y = labels[index]
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += loss.item()
        wrong += (logits.argmax(1) != y).sum().item()
        seen += batch
        if (it + 1) % args.report_every == 0:
            print(f"pytorch,{name},{args.seed},{it + 1},{loss_sum / args.report_every:.4f},{100.0 * wrong / seen:.2f}",
                  flush=True)
            loss_sum, wrong, seen = 0.0, 0, 0


if __name__ == "__main__":
    main()
