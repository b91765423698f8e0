"""Weight import: timm/pycls state_dicts and Keras weight files into the kit's RegNetY models.

Every importer first reads and checks the whole checkpoint against the model (every key present,
nothing extra, every shape right) and only then assigns, so a bad checkpoint raises one
`WeightsError` naming the first offending keys and leaves the model untouched.

Formats:
- `.safetensors`: a timm/pycls state_dict, read with safetensors' numpy reader (no torch needed);
- `.pth` / `.pt` / `.bin`: a PyTorch state_dict, read with `torch.load(weights_only=True)`, which
  never unpickles arbitrary objects (needs torch);
- `.weights.h5` / `.keras`: Keras 3 files, matched to the model's topology by Keras itself;
- `.h5` written by Keras 2 (`save_weights`), e.g. the seed implementation's weights: matched by
  layer name, so the seed flavour's layer names make them load directly.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.digest import file_sha256
from edge.errors import WeightsError, first_line

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
_BN_FROM_TORCH = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
_IGNORED_TORCH_KEYS = ("num_batches_tracked",)
_SHOWN = 5  # offending keys named in one message
# A Keras 2 Normalization layer's state; the kit's models hold those constants in their config.
_PREPROCESSING_STATS = {"mean", "variance", "count"}


@dataclass(frozen=True)
class ImportReport:
    """What an import did: which file, its SHA-256, its format, how many tensors were assigned."""

    path: str
    sha256: str
    format: str
    tensors: int


def load_weights(model, path: str | Path) -> ImportReport:
    """Load any supported checkpoint into `model`, choosing the importer by file name and content."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist (or is not a file); pass the path of a checkpoint")
    name = path.name.lower()
    if name.endswith(".safetensors") or name.endswith(TORCH_SUFFIXES):
        fmt = "timm state_dict"
        count = import_timm_state_dict(model, read_state_dict(path), source=str(path))
    elif name.endswith(".weights.h5") or name.endswith(".keras"):
        fmt = "keras"
        count = _load_keras_native(model, path)
    elif name.endswith((".h5", ".hdf5")):
        fmt = "keras legacy h5 (by layer name)"
        count = import_by_layer_name(model, read_legacy_h5(path), source=str(path))
    else:
        raise WeightsError(
            f"{path}: unknown checkpoint type; use .safetensors, .pth/.pt/.bin (timm/pycls state_dict), "
            ".weights.h5 or .keras (Keras 3), or .h5 (Keras 2 save_weights)")
    return ImportReport(str(path), file_sha256(path), fmt, count)


# --------------------------------------------------------------------------------------------
# Reading state_dicts


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A PyTorch-style state_dict as numpy arrays, from .safetensors or a torch pickle (weights only)."""
    path = Path(path)
    if path.name.lower().endswith(".safetensors"):
        return _read_safetensors(path)
    return _read_torch(path)


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for header/size problems
        raise WeightsError(f"{path} is not a readable .safetensors file ({first_line(exc)}); "
                           "re-download or re-export it") from None
    return {k: np.asarray(v) for k, v in tensors.items()}


def _read_torch(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise WeightsError(f"reading {path.name} needs PyTorch (pip install torch); or convert the checkpoint "
                           "to .safetensors, which the kit reads without it") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, a pickle with code in it, not a checkpoint at all
        raise WeightsError(f"{path} could not be read as a PyTorch weights-only checkpoint "
                           f"({first_line(exc)}); it may be truncated, not a checkpoint, or hold pickled code") from None
    for wrapper in ("state_dict", "model", "model_state"):  # training checkpoints nest the weights
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state_dict (a mapping of names to tensors)")
    out = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor; "
                               "is this a state_dict?")
        out[key.removeprefix("module.")] = value.detach().float().numpy() if value.is_floating_point() \
            else value.detach().numpy()
    return out


# --------------------------------------------------------------------------------------------
# timm / pycls


def _timm_prefix(layer_name: str) -> str:
    """The paper flavour names layers after timm's module paths: s1_b1_conv1_conv <-> s1.b1.conv1.conv."""
    return layer_name.replace("_", ".")


def timm_expectations(model) -> dict[str, tuple[object, str, tuple[int, ...]]]:
    """For every state_dict key the model needs: (variable, conversion, Keras shape)."""
    from keras import layers

    expected: dict[str, tuple[object, str, tuple[int, ...]]] = {}
    for layer in model.layers:
        prefix = _timm_prefix(layer.name)
        if isinstance(layer, layers.Conv2D):
            expected[f"{prefix}.weight"] = (layer.kernel, "conv", tuple(layer.kernel.shape))
            if layer.use_bias:
                expected[f"{prefix}.bias"] = (layer.bias, "copy", tuple(layer.bias.shape))
        elif isinstance(layer, layers.Dense):
            expected[f"{prefix}.weight"] = (layer.kernel, "dense", tuple(layer.kernel.shape))
            expected[f"{prefix}.bias"] = (layer.bias, "copy", tuple(layer.bias.shape))
        elif isinstance(layer, layers.BatchNormalization):
            for attr, torch_name in _BN_FROM_TORCH.items():
                var = getattr(layer, attr)
                expected[f"{prefix}.{torch_name}"] = (var, "copy", tuple(var.shape))
    return expected


def _to_keras(array: np.ndarray, conversion: str) -> np.ndarray:
    if array.dtype.kind == "f" and array.dtype != np.float32:  # float16 / float64 checkpoints
        array = array.astype(np.float32)
    if conversion == "conv":  # OIHW -> HWIO (grouped: O, I/groups, H, W -> H, W, I/groups, O)
        return array.transpose(2, 3, 1, 0)
    if conversion == "dense":  # (out, in) -> (in, out)
        return array.T
    return array


def _to_torch(array: np.ndarray, conversion: str) -> np.ndarray:
    if conversion == "conv":  # HWIO -> OIHW
        return array.transpose(3, 2, 0, 1)
    if conversion == "dense":
        return array.T
    return array


def timm_state_dict(model) -> dict[str, np.ndarray]:
    """The model's weights as a timm/pycls state_dict (the inverse of `import_timm_state_dict`)."""
    return {key: np.ascontiguousarray(_to_torch(np.asarray(variable.numpy()), conversion))
            for key, (variable, conversion, _) in timm_expectations(model).items()}


def import_timm_state_dict(model, state_dict: Mapping[str, np.ndarray], source: str = "state_dict") -> int:
    """Assign a timm/pycls RegNetY state_dict to a paper-flavour model; all-or-nothing."""
    if any(layer.name.startswith("Stage_") for layer in model.layers):
        raise WeightsError(f"{source}: timm/pycls checkpoints fit the paper flavour, but this model is the seed "
                           "flavour; build it with --flavour paper")
    expected = timm_expectations(model)
    given = {k: v for k, v in state_dict.items() if not k.endswith(_IGNORED_TORCH_KEYS)}
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing keys {_some(missing)}")
        if extra:
            parts.append(f"unexpected keys {_some(extra)}")
        raise WeightsError(f"{source} does not fit {model.name}: {'; '.join(parts)}{_variant_hint(given)}")
    assignments = []
    mismatched = []
    for key, (variable, conversion, shape) in expected.items():
        array = np.asarray(given[key])
        value = _to_keras(array, conversion) if array.ndim == len(shape) else array
        if tuple(value.shape) != shape:
            mismatched.append(f"{key} {tuple(array.shape)} (model needs {_torch_shape(shape, conversion)})")
        else:
            assignments.append((variable, value))
    if mismatched:
        if all(m.startswith("head.fc.") for m in mismatched):
            classes = np.asarray(given["head.fc.weight"]).shape[0]
            hint = f"; the checkpoint has {classes} classes: build the model with --classes {classes}"
        else:
            hint = _variant_hint(given)
        raise WeightsError(f"{source} does not fit {model.name}: shape mismatch at {_some(mismatched)}{hint}")
    _assign(assignments)
    return len(assignments)


def _torch_shape(keras_shape: tuple[int, ...], conversion: str) -> tuple[int, ...]:
    if conversion == "conv":
        h, w, i, o = keras_shape
        return (o, i, h, w)
    if conversion == "dense":
        return tuple(reversed(keras_shape))
    return keras_shape


def _variant_hint(state_dict: Mapping[str, np.ndarray]) -> str:
    guess = _guess_variant(state_dict)
    return f"; it looks like a checkpoint of RegNetY-{guess}" if guess else ""


def _guess_variant(state_dict: Mapping[str, np.ndarray]) -> str | None:
    """Which known variant a timm RegNetY state_dict matches, by stage depths and widths."""
    from models.regnety import stage_plan
    from models.zoo import VARIANTS

    depths: dict[int, int] = {}
    widths: dict[int, int] = {}
    for key, value in state_dict.items():
        m = re.match(r"s(\d+)\.b(\d+)\.conv1\.conv\.weight$", key)
        if m:
            s, b = int(m.group(1)), int(m.group(2))
            depths[s] = max(depths.get(s, 0), b)
            widths[s] = int(np.asarray(value).shape[0])
    found = [(depths[s], widths[s]) for s in sorted(depths)]
    for name, design in VARIANTS.items():
        if found == [(st.depth, st.width) for st in stage_plan(design)]:
            return name
    return None


# --------------------------------------------------------------------------------------------
# Keras files


def read_legacy_h5(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Weights of a Keras 2 `save_weights` .h5 file as {layer path: {variable: array}}.

    Weight names look like "Stage_0_YBlock_0_conv1x1_1/kernel:0", or with the enclosing layers
    first when the model nests them ("Stage_0/Stage_0_YBlock_0/Stage_0_YBlock_0_conv1x1_1/kernel:0").
    The layer path kept is everything before the variable name.
    """
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(f"{path} is not a readable HDF5 file ({first_line(exc)}); it may be truncated") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise WeightsError(f"{path} is not a Keras 2 weights file (no layer_names); "
                               "Keras 3 files end in .weights.h5 or .keras")
        out: dict[str, dict[str, np.ndarray]] = {}
        for layer_name in _strings(root.attrs["layer_names"]):
            group = root[layer_name]
            for weight_name in _strings(group.attrs.get("weight_names", [])):
                layer_path, _, var = weight_name.rpartition("/")
                out.setdefault(layer_path or layer_name, {})[var.split(":")[0]] = np.asarray(group[weight_name])
    return out


def import_by_layer_name(model, weights: Mapping[str, Mapping[str, np.ndarray]], source: str = "weights") -> int:
    """Assign {layer name or path: {variable name: array}} to the model's layers of the same name."""
    aliases = _flavour_aliases(model)
    by_name: dict[str, Mapping[str, np.ndarray]] = {}
    for layer_path, variables in weights.items():
        name = aliases.get(layer_path) or aliases.get(_tail(layer_path, 2)) or layer_path.rpartition("/")[2]
        by_name[name] = variables
    ours = {layer.name: layer for layer in model.layers if layer.weights and not _is_preprocessing(layer)}
    missing = [n for n in ours if n not in by_name]
    extra = [n for n, v in by_name.items() if n not in ours and not set(v) <= _PREPROCESSING_STATS]
    if missing or extra:
        parts = ([f"missing layers {_some(missing)}"] if missing else []) + \
                ([f"unexpected layers {_some(extra)}"] if extra else [])
        raise WeightsError(f"{source} does not fit {model.name}: {'; '.join(parts)}")
    assignments = []
    mismatched = []
    for name, layer in ours.items():
        given = by_name[name]
        for variable in layer.weights:
            var_name = variable.name.rpartition("/")[2]
            if var_name not in given:
                mismatched.append(f"{name}/{var_name} missing")
                continue
            value = np.asarray(given[var_name])
            if tuple(value.shape) != tuple(variable.shape):
                mismatched.append(f"{name}/{var_name} {tuple(value.shape)} (model needs {tuple(variable.shape)})")
                continue
            assignments.append((variable, value))
    if mismatched:
        raise WeightsError(f"{source} does not fit {model.name}: {_some(mismatched)}")
    _assign(assignments)
    return len(assignments)


def _load_keras_native(model, path: Path) -> int:
    """Keras 3 .weights.h5 / .keras through Keras itself, restoring the model if Keras fails."""
    if path.name.lower().endswith(".keras") and not zipfile.is_zipfile(path):
        raise WeightsError(f"{path} is not a .keras archive (not a zip file); it may be truncated")
    snapshot = [v.numpy() for v in model.weights]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Keras only warns about some mismatches: make them errors
            model.load_weights(str(path))
    except Exception as exc:
        _assign(list(zip(model.weights, snapshot)))
        raise WeightsError(f"{path} does not fit {model.name}: {first_line(exc)}") from None
    return len(model.weights)


# --------------------------------------------------------------------------------------------
# helpers


def _assign(assignments: Iterable[tuple[object, np.ndarray]]) -> None:
    for variable, value in assignments:
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _is_preprocessing(layer) -> bool:
    from keras import layers

    return isinstance(layer, (layers.Normalization, layers.Resizing, layers.Rescaling))


def _flavour_aliases(model) -> Mapping[str, str]:
    from models.zoo import FLAVOURS

    names = {layer.name for layer in model.layers}
    for flavour in FLAVOURS.values():
        if set(flavour.weight_aliases.values()) and set(flavour.weight_aliases.values()) <= names:
            return flavour.weight_aliases
    return {}


def _tail(layer_path: str, n: int) -> str:
    return "/".join(layer_path.split("/")[-n:])


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _some(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")
