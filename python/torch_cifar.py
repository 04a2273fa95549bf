"""The CIFAR nets and data protocol of He et al. (2015) in plain PyTorch, as the public
reproduction (akamaster/pytorch_resnet_cifar10) writes them: its parameter names, its option-A
LambdaLayer, its avg_pool2d. reslab's weights load into these nets with strict=True.

Used by tests/python/step_reference.py (the step-for-step equality test) and
scripts/torch_start.py (PyTorch's side of the plain-56 start study).
"""
import io
import tarfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    """akamaster's block; `shortcut_option` None makes it the plain net's pair of layers."""

    def __init__(self, in_planes, planes, stride, shortcut_option, bn, broken_padding):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = bn(planes)
        self.residual = shortcut_option is not None
        self.shortcut = nn.Sequential()
        shape_changes = stride != 1 or in_planes != planes
        if shortcut_option == "A" and shape_changes:
            before, after = (0, planes - in_planes) if broken_padding else (planes // 4, planes // 4)
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, before, after), "constant", 0))
        elif shortcut_option == "C" or (shortcut_option == "B" and shape_changes):
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), bn(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    def __init__(self, depth, shortcut_option, bn, broken_padding):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = bn(16)
        in_planes = 16
        for stage, planes in enumerate((16, 32, 64)):
            blocks = []
            for i in range(n):
                stride = 2 if (i == 0 and stage > 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride, shortcut_option, bn, broken_padding))
                in_planes = planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def he_init(model):
    """The paper's initialisation as the PyTorch reproductions write it: He normal (fan-out) for
    convolutions; BN weight 1, bias 0 and nn.Linear's default are PyTorch's own."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


def load_cifar(path):
    """(train_images uint8 N x 3 x 32 x 32, train_labels, test_images, test_labels) from CIFAR-10's
    binary version: the .tar.gz archive or a folder holding the data_batch_*.bin files."""
    path = Path(path)
    files = {}
    if path.is_file():
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".bin"):
                    files[Path(member.name).name] = tar.extractfile(member).read()
    else:
        folder = path / "cifar-10-batches-bin" if (path / "cifar-10-batches-bin").is_dir() else path
        files = {f.name: f.read_bytes() for f in folder.glob("*.bin")}

    def records(names):
        raw = np.concatenate([np.frombuffer(files[n], dtype=np.uint8).reshape(-1, 3073) for n in names])
        return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)

    train = records([f"data_batch_{i}.bin" for i in range(1, 6)])
    test = records(["test_batch.bin"])
    return train[0], train[1], test[0], test[1]


def pixel_mean(images):
    """The paper's preprocessing: the per-pixel mean (1 x 3 x 32 x 32) of [0, 1] pixels, in float64."""
    return (images.astype(np.float64) / 255.0).mean(axis=0, keepdims=True)
