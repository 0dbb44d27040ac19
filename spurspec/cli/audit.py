"""`spurspec audit MODEL --dataset DS --out DIR`: an outside ONNX model scored and probed on a
dataset (calls spurspec.audit.stage.audit); prints what was read, the metrics and the probes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spurspec.cli.common import out

SETTINGS = "spurspec.audit.stage:AuditConfig"  # its defaults fill {default:FIELD} in help


def command(
    model: Annotated[Path, typer.Argument(help="An ONNX model file (.pt2, TorchScript and pickles are refused: loading them unpickles).")],
    dataset: Annotated[Path, typer.Option(help="A spurspec dataset directory at the model's input size.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write, shaped like an evaluated run.")],
    card: Annotated[Path | None, typer.Option(help="Model card (TOML): size, channels, mean, std, output, index, summary; overrides the model's own metadata.")] = None,
    size: Annotated[int | None, typer.Option(help="Card: input size in pixels (default: the model's input shape).")] = None,
    channels: Annotated[int | None, typer.Option(help="Card: input channels (default: the model's input shape).")] = None,
    mean: Annotated[list[float] | None, typer.Option(help="Card: normalisation mean on [0, 1] images, once or per channel (unset anywhere: 0.5).")] = None,
    std: Annotated[list[float] | None, typer.Option(help="Card: normalisation std, once or per channel (unset anywhere: 0.5).")] = None,
    output: Annotated[str | None, typer.Option(help="Card: logit | probability (an image output) | pixel (a probability map) (unset anywhere: logit).")] = None,
    index: Annotated[int | None, typer.Option(help="Card: the positive class's index in the output (unset anywhere: 0).")] = None,
    summary: Annotated[str | None, typer.Option(help="Card: a pixel output's summarising function: mean, max, topk:P (unset anywhere: mean).")] = None,
    insert: Annotated[list[str] | None, typer.Option(help="Probe: paint a feature in (tube, vignette, ink or FILE.png) and score again. Repeatable.")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Probe: fill the spurious region where the dataset records it and score again.")] = False,
    attribution: Annotated[bool, typer.Option("--attribution", help="Probe: occlusion maps' evidence mass per region and the pointing game.")] = False,
    window: Annotated[int | None, typer.Option(help="Occlusion window in pixels (default: an eighth of the image).")] = None,
    stride: Annotated[int | None, typer.Option(help="Occlusion stride in pixels (default: half the window).")] = None,
    max_images: Annotated[int | None, typer.Option(help="Attribution: at most this many images per image set (default {default:max_images}).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per forward pass (default {default:batch_size}).")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="Patient-bootstrap replicates per interval (default {default:bootstrap}).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seeds the bootstrap and the probes' draws (default {default:seed}).")] = None,
    threads: Annotated[int | None, typer.Option(help="Compute threads (default: OMP_NUM_THREADS if set, else the cores this process may use).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing DIR.")] = False,
) -> None:
    """Audit a model trained anywhere (ONNX): robust AUROC with intervals, insertion/removal probes, occlusion evidence mass."""
    from spurspec.audit.stage import AuditConfig, audit
    from spurspec.cli.evaluate import print_metrics
    from spurspec.cli.probe import print_probe

    flags = {"size": size, "channels": channels, "mean": tuple(mean) if mean else None,
             "std": tuple(std) if std else None, "output": output, "index": index, "summary": summary}
    given = {"batch_size": batch_size, "bootstrap": bootstrap, "seed": seed, "max_images": max_images,
             "window": window, "stride": stride, "threads": threads}
    cfg = AuditConfig(model=model, dataset=dataset, out=out_dir, card=card, card_flags=flags,
                      insert=tuple(insert or ()), remove=remove, attribution=attribution,
                      **{k: v for k, v in given.items() if v is not None})
    res = audit(cfg, force=force)
    m = res.model
    out.print(f"model: {m.path} (sha256 {m.digest})")
    out.print(f"card: {' '.join(f'{k}={v}' for k, v in m.card.record().items())}")
    print_metrics(res.metrics, f"{res.out}: test split, {cfg.bootstrap} bootstrap replicates")
    for name, table in res.probes.items():
        print_probe(res.out, name, table.to_pylist())
    for note in res.notes:
        out.print(f"note: {note}")
    out.print(f"wrote {res.out}")
