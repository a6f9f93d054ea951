"""ResNet-50 trunk in plain torch with torchvision's module layout and key names (v1.5: stride on the 3x3 conv).

The released BioViL checkpoints were saved from torchvision's ResNet, so names such as ``layer3.2.bn1.weight`` and
the unused ``fc`` must stay exactly as they are for ``load_state_dict(strict=True)`` to accept the files.
"""

from __future__ import annotations

import torch
from torch import nn


def _pair(v: object) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))  # type: ignore[index]


def _conv3x3(inp: int, out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inp, out, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(inp: int, out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inp, out, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (expansion 4, stride on conv2)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, inplanes, H, W] -> [B, 4*planes, H/stride, W/stride]."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with Bottleneck blocks; ``forward`` returns the last feature map, as hi-ml's ``ResNetHIML`` does.

    ``base_width`` 64 and ``layers`` (3, 4, 6, 3) give ResNet-50 (2048 output channels, stride 32).
    """

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 6, 3), base_width: int = 64,
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = base_width
        self.conv1 = nn.Conv2d(3, base_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(base_width, layers[0])
        self.layer2 = self._make_layer(base_width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(base_width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(base_width * 8, layers[3], stride=2)
        self.out_channels = base_width * 8 * Bottleneck.expansion
        # Never used in forward, but present in the released state dicts.
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.out_channels, num_classes)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of ``forward``'s output for a [B, 3, height, width] input, from the strided layers' arithmetic
        (no forward pass): conv1 and maxpool, then the first block of each strided layer."""
        strided: list[nn.Conv2d | nn.MaxPool2d] = [self.conv1, self.maxpool]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            first = layer[0]
            assert isinstance(first, Bottleneck)
            strided.append(first.conv2)
        size = [height, width]
        for mod in strided:
            k, s, p = (_pair(mod.kernel_size), _pair(mod.stride), _pair(mod.padding))
            size = [(n + 2 * p[i] - k[i]) // s[i] + 1 for i, n in enumerate(size)]
        return size[0], size[1]

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        mods = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        mods += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> last feature map [B, out_channels, H/32, W/32]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
