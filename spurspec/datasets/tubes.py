"""Read chest-tube labels: a CSV `ImageId,chest_tube` (0/1) or the study authors' pickled dict
{SOPInstanceUID: bool}. The pickle is read with an unpickler that refuses every global, so a
crafted file cannot run code: only dict/list/tuple/str/bool/int/float/None can load. Labels are
0/1 (true/false also read); anything else is refused naming the line or key."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from spurspec.datasets import tables
from spurspec.errors import InputError

PICKLE_SUFFIXES = (".pkl", ".pickle")
# 0/1 (and true/false, the pickle's booleans written out), as every spurious attribute is read
# (datasets.common.parse_binary); "yes", "t" and the like are refused, not guessed.
_TRUE = {"1", "1.0", "true"}
_FALSE = {"0", "0.0", "false"}
# The authors' file is 113 kB; anything far larger is not a label dict and is not read.
MAX_PICKLE_BYTES = 64 << 20


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Containers and scalars are built by pickle opcodes without looking up any global; every
    class, function or module reference (os.system, builtins.eval, ...) is refused here."""

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}")

    def persistent_load(self, pid):  # type: ignore[no-untyped-def]
        raise pickle.UnpicklingError("refused a persistent id")


def load_restricted_pickle(path: Path) -> object:
    """Unpickle plain data only; InputError naming the file for anything else."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_PICKLE_BYTES:
        raise InputError(f"{path}: {len(data)} bytes is too large for a label pickle")
    try:
        return _NoGlobalsUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise InputError(f"{path}: unsafe or invalid pickle: {exc}") from None
    # A malformed opcode stream raises assorted errors (EOFError, ValueError, KeyError, ...).
    except Exception as exc:
        raise InputError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None


def _as_label(value: object, where: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, float) and value in (0.0, 1.0):
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return 1
        if text in _FALSE:
            return 0
    raise InputError(f"{where}: chest-tube label {value!r} is not 0/1 or true/false")


def _from_pickle(path: Path) -> dict[str, int]:
    obj = load_restricted_pickle(path)
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a pickled dict {{ImageId: bool}}, got {type(obj).__name__}")
    labels: dict[str, int] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not key.strip():
            raise InputError(f"{path}: key {key!r} is not an image id string")
        labels[key.strip()] = _as_label(value, f"{path}: {key}")
    return labels


def _from_csv(path: Path) -> dict[str, int]:
    header, lines = tables.parse_csv(path, tables.read_text(path, "tube-label CSV"))
    if "ImageId" not in header or "chest_tube" not in header:
        raise InputError(f"{path}: expected columns ImageId,chest_tube; found {','.join(header) or 'nothing'}")
    id_col, label_col = header.index("ImageId"), header.index("chest_tube")
    labels: dict[str, int] = {}
    first_line: dict[str, int] = {}
    for line, row in lines:
        if len(row) <= max(id_col, label_col):
            raise InputError(f"{path}:{line}: expected {len(header)} columns, got {len(row)}")
        image_id = row[id_col].strip()
        if not image_id:
            raise InputError(f"{path}:{line}: empty ImageId")
        label = _as_label(row[label_col], f"{path}:{line}")
        if image_id in labels and labels[image_id] != label:
            raise InputError(
                f"{path}:{line}: {image_id} has chest_tube={label} but line {first_line[image_id]} says {labels[image_id]}"
            )
        labels[image_id] = label
        first_line.setdefault(image_id, line)
    return labels


def load_tube_labels(path: Path) -> dict[str, int]:
    """{ImageId: 0/1} from a .csv or a .pkl/.pickle file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: tube-label file not found")
    labels = _from_pickle(path) if path.suffix.lower() in PICKLE_SUFFIXES else _from_csv(path)
    if not labels:
        raise InputError(f"{path}: holds no chest-tube labels")
    return labels
