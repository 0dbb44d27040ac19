"""Small image classifiers built here, not from spurspec's network code, exported to ONNX with
torch.onnx.export: a tube reader (a top-hat filter: bright thin strokes, whatever the label) and a
tube-blind model (an erosion that removes strokes two pixels wide, then the mean brightness that
is left, which the subtle lesion raises). Weights are set by hand, so no training is needed."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class TubeReader(nn.Module):
    """score = max over the image of (pixel - mean of its 5x5 neighbourhood): a thin bright stroke."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 5, padding=2, bias=False)
        with torch.no_grad():
            w = torch.full((1, 1, 5, 5), -1.0 / 24)
            w[0, 0, 2, 2] = 1.0
            self.conv.weight.copy_(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x[:, :1])).amax(dim=(1, 2, 3), keepdim=False)[:, None] * 4.0 - 2.0


class TubeBlind(nn.Module):
    """score = mean of the eroded image (a 3x3 min-pool removes strokes up to 2 px wide)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(5, stride=1, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eroded = -self.pool(-x[:, :1])
        return eroded.mean(dim=(1, 2, 3))[:, None] * 10.0


class PixelReader(TubeReader):
    """A pixel model: P(region) = sigmoid of the top-hat response, a (N, 1, S, S) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x[:, :1]) * 4.0 - 1.0)


class NaNOut(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.mean(dim=(1, 2, 3)) * float("nan"))[:, None]


def to_onnx(model: nn.Module, path: Path, size: int = 32, channels: int = 1, rank: int = 4) -> Path:
    """`model` exported with torch.onnx.export, batch size free (rank 3: an input without channels)."""
    shape = (2, channels, size, size) if rank == 4 else (2, size, size)
    model = model.eval() if rank == 4 else _Rank3(model).eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(model, (torch.zeros(shape),), dynamic_shapes={"x": {0: batch}}, dynamo=True,
                                verbose=False)
    program.save(str(path))
    return path


class _Rank3(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x[:, None])


if __name__ == "__main__":  # python -m tests.e2e.outside_models DIR: the docs' worked example
    import sys

    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in (("tube-reader", TubeReader()), ("tube-blind", TubeBlind())):
        print(f"wrote {to_onnx(net, folder / f'{name}.onnx', size=int(sys.argv[2]) if len(sys.argv) > 2 else 32)}")
