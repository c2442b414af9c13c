"""Network architectures for the expression recogniser (torch; training and export only).

All nets take ``(N, 1, S, S)`` float32 grey images normalised with :data:`MEAN`/:data:`STD`
(S = 48 for FER2013) and return ``(N, 7)`` logits in :data:`affcore.fer.CLASSES` order.
They are fully convolutional with global average pooling, so other input sizes work too.
"""
from __future__ import annotations

from torch import nn

from . import ARCH_NAMES

__all__ = ["MiniXception", "ResNetFER", "ARCHS", "build_model", "count_params"]


class SeparableConv2d(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__(nn.Conv2d(cin, cin, k, padding=k // 2, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False))


class XceptionModule(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.residual = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))
        self.main = nn.Sequential(
            SeparableConv2d(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            SeparableConv2d(cout, cout), nn.BatchNorm2d(cout),
            nn.MaxPool2d(3, stride=2, padding=1))

    def forward(self, x):
        return self.main(x) + self.residual(x)


class MiniXception(nn.Module):
    """Mini-Xception (Arriaga, Valdenegro-Toro & Plöger 2017): two plain 3x3 convs, four
    depthwise-separable residual modules (16-32-64-128 channels) and a 3x3 conv to the
    classes with global average pooling. About 57k parameters."""

    def __init__(self, num_classes: int = 7, widths=(16, 32, 64, 128), stem: int = 8):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, stem, 3, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True),
            nn.Conv2d(stem, stem, 3, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        mods, c = [], stem
        for w in widths:
            mods.append(XceptionModule(c, w))
            c = w
        self.modules_ = nn.Sequential(*mods)
        self.head = nn.Conv2d(c, num_classes, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.head(self.modules_(self.stem(x)))).flatten(1)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        s = x if self.short is None else self.short(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + s)


class ResNetFER(nn.Module):
    """A small ResNet for 48x48 faces: a 3x3 stem at full resolution, a strided 3x3 conv to
    half resolution, then stages of basic blocks (the first block of each later stage
    halves the resolution), dropout and a linear classifier on globally pooled features."""

    def __init__(self, num_classes: int = 7, widths=(64, 128, 256), blocks=(1, 1, 1), stem: int = 32,
                 dropout: float = 0.3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True),
            nn.Conv2d(stem, widths[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True))
        layers, c = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(c, w, stride=2 if (i > 0 and j == 0) else 1))
                c = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        # torch's default initialisation: on FER2013 it escaped the early "everything is
        # happy" plateau faster than Kaiming fan-out with zero-initialised residual branches

    def forward(self, x):
        return self.fc(self.drop(self.pool(self.layers(self.stem(x))).flatten(1)))


#: Architecture name -> constructor (keyword arguments fixed per name).
ARCHS = {
    "mini_xception": lambda: MiniXception(),
    "resnet_s": lambda: ResNetFER(widths=(48, 96, 192), blocks=(1, 1, 1), stem=24),
    "resnet_m": lambda: ResNetFER(widths=(64, 128, 224), blocks=(1, 1, 1), stem=32),
    "resnet_l": lambda: ResNetFER(widths=(64, 128, 256), blocks=(1, 2, 2), stem=32),
}

assert sorted(ARCHS) == sorted(ARCH_NAMES), "affcore.fer.ARCH_NAMES must list the architectures of ARCHS"


def build_model(arch: str) -> nn.Module:
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
    return ARCHS[arch]()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
