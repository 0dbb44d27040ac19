"""An outside model file, opened safely, with its card: ONNX only, run by ONNX Runtime (the CUDA
provider when this onnxruntime has it, else CPU). Nothing in an ONNX file is code: the graph is
protobuf data of standard operators, so opening one cannot run Python. Files saved by
torch.export (.pt2) and TorchScript are refused: loading either unpickles (torch.export.load reads
weights and constants through torch's unrestricted loader, with the weights-only guard off, and
custom objects through the pickle module; TorchScript archives run their own code and unpickle
constants), and spurspec never unpickles a model file (docs/audit.md).

`OnnxModel.open` checks the file and the card against the graph (input rank 4, channels, size;
an output the card can read) and runs a first batch, whose scores must be finite; every mismatch
is one InputError naming what differs. Reads the model file; writes nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spurspec.audit import card as cards
from spurspec.errors import InputError

REFUSED = {".pt2": "a torch.export program", ".pt": "a PyTorch file", ".pth": "a PyTorch file",
           ".ckpt": "a checkpoint", ".pkl": "a pickle", ".pickle": "a pickle", ".joblib": "a pickle"}
MODEL_BYTES = 4 * 1024**3  # ONNX's protobuf limit is 2 GB; external data aside, a larger file is not one


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_onnx(path: Path):
    """The file parsed as an ONNX ModelProto and checked; anything else is one InputError."""
    import onnx

    if not path.is_file():
        raise InputError(f"{path}: model file not found")
    kind = REFUSED.get(path.suffix.lower())
    if kind is not None:
        raise InputError(f"{path}: {kind} is loaded by unpickling, which can run any code; spurspec reads ONNX "
                         "models only (export with torch.onnx.export; see docs/audit.md)")
    if path.stat().st_size > MODEL_BYTES:
        raise InputError(f"{path}: larger than {MODEL_BYTES >> 30} GiB: not an ONNX model spurspec reads")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and the like: all say "not ONNX"
        raise InputError(f"{path}: not a valid ONNX model ({_first_line(exc)})") from None
    # Weights stored in other files name those files by path: refused before anything (the checker
    # included) follows the path, so a model file can never make spurspec read a file it did not name.
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _tensors(proto)):
        raise InputError(f"{path}: the model keeps weights in external files; spurspec reads a model whose weights "
                         "are inside its one file (onnx.save_model(..., save_as_external_data=False))")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # onnx's ValidationError and the like
        raise InputError(f"{path}: not a valid ONNX model ({_first_line(exc)})") from None
    if not proto.graph.node:
        raise InputError(f"{path}: not a valid ONNX model (its graph has no operators)")
    return proto


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _tensors(proto):
    """Every tensor stored in the graph: initializers and Constant nodes' values (top level)."""
    yield from proto.graph.initializer
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t


def defaults(proto) -> dict[str, Any]:
    """What the file itself says: a card in its metadata, and size/channels from its input shape."""
    out: dict[str, Any] = {}
    dims = _input_dims(proto)
    if len(dims) == 4:
        if isinstance(dims[1], int):
            out["channels"] = dims[1]
        if isinstance(dims[2], int) and dims[2] == dims[3]:
            out["size"] = dims[2]
    meta = {p.key: p.value for p in proto.metadata_props}
    if cards.METADATA_KEY in meta:
        out.update(cards.parse(meta[cards.METADATA_KEY], f"the model's {cards.METADATA_KEY} metadata"))
    return out


def _check_rank(proto, path: Path) -> None:
    inits = {i.name for i in proto.graph.initializer}
    n_inputs = len([i for i in proto.graph.input if i.name not in inits])
    if n_inputs != 1:
        raise InputError(f"{path}: the model takes {n_inputs} inputs; spurspec feeds one image tensor")
    dims = _input_dims(proto)
    if len(dims) != 4:
        raise InputError(f"{path}: the model's input has rank {len(dims)} {_shape(dims)}; spurspec feeds images "
                         "as (N, C, H, W), rank 4")


def _input_dims(proto) -> list[int | str]:
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        return []
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in inputs[0].type.tensor_type.shape.dim]


@dataclass
class OnnxModel:
    path: Path
    digest: str
    card: cards.Card
    session: Any
    input_name: str
    output_name: str

    @classmethod
    def open(cls, path: Path, card_file: Path | None = None, flags: dict[str, Any] | None = None,
             threads: int | None = None) -> OnnxModel:
        """The model and its card, checked against each other (see the module's docstring), run
        on `threads` compute threads (unset: spurspec.runtime's choice, as every stage)."""
        path = Path(path)
        proto = _read_onnx(path)
        _check_rank(proto, path)
        card = cards.combine(defaults(proto), cards.read(card_file) if card_file else {}, flags or {})
        card = card.check(str(card_file or path))
        session = _session(proto.SerializeToString(), path, threads)
        model = cls(path, sha256(path), card, session, *_io_names(session, path))
        model._check_shapes(proto)
        return model

    def _check_shapes(self, proto) -> None:
        dims = _input_dims(proto)
        where = self.path
        want = [None, self.card.channels, self.card.size, self.card.size]
        for axis, (have, need) in enumerate(zip(dims, want, strict=True)):
            if axis and isinstance(have, int) and have != need:
                name = "channels" if axis == 1 else "size"
                raise InputError(f"{where}: the model's input is {_shape(dims)} but the card says {name} {need}")

    def run(self, x: np.ndarray) -> np.ndarray:
        """The raw output of float32 inputs (N, C, S, S)."""
        return self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(x, np.float32)})[0]

    def normalise(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, S, S) images as the model's input: (image/255 - mean)/std, computed as one
        multiply and one subtract in place (two passes over the batch, not four)."""
        shape = (1, -1, 1, 1)
        mean = np.asarray(self.card.mean, np.float64).reshape(shape)
        std = np.asarray(self.card.std, np.float64).reshape(shape)
        x = np.multiply(images, (1.0 / (255.0 * std)).astype(np.float32), dtype=np.float32)
        x -= (mean / std).astype(np.float32)
        return x

    def scores(self, x: np.ndarray) -> np.ndarray:
        """One float64 score per input (N,), read from the output as the card says."""
        return self.read_scores(self.run(x))

    def read_scores(self, out: np.ndarray) -> np.ndarray:
        card, n = self.card, len(out)
        want = (3, 4) if card.pixel else (1, 2)
        if out.ndim not in want:
            raise InputError(f"{self.path}: the model's output has shape {tuple(out.shape)}; a {card.output} output "
                             f"must have rank {' or '.join(map(str, want))}")
        if out.ndim == want[1]:
            if card.index >= out.shape[1]:
                raise InputError(f"{self.path}: the card's index {card.index} is outside the output's {out.shape[1]} "
                                 f"classes (shape {tuple(out.shape)})")
            out = out[:, card.index]
        if not card.pixel:
            return out.astype(np.float64).reshape(n)
        import torch

        from spurspec.training.models import summaries

        prob = torch.from_numpy(np.ascontiguousarray(out, np.float32))
        return summaries.get(card.summary)(prob).double().numpy()

    def check_first(self, images: np.ndarray) -> None:
        """Run a first batch: its scores must be finite (else the card or the model is wrong)."""
        try:
            scores = self.scores(self.normalise(images))
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any runtime failure means the card does not fit  # onnxruntime's errors name the node and the shape that disagree
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(f"{self.path}: the model failed on a first batch shaped by the card "
                             f"({self.card.channels}x{self.card.size}x{self.card.size}): {first[:200]}") from None
        bad = ~np.isfinite(scores)
        if bad.any():
            raise InputError(f"{self.path}: the model's output is not finite (NaN or infinite) on {int(bad.sum())} of "
                             f"{len(scores)} images of a first batch; check the card's normalisation and output")


def _shape(dims: list) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _session(data: bytes, path: Path, threads: int | None):
    import onnxruntime as ort

    from spurspec import runtime

    options = ort.SessionOptions()
    options.intra_op_num_threads = runtime.choose_threads(threads)
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(data, options, providers=providers)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: ONNX Runtime cannot run this model ({first[:200]})") from None


def _io_names(session, path: Path) -> tuple[str, str]:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise InputError(f"{path}: the model takes {len(inputs)} inputs; spurspec feeds one image tensor")
    return inputs[0].name, outputs[0].name
