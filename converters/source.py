"""Loading the reference a conversion starts from: architecture, weights, labels, preprocessing.

Without `--weights`, RegNetY-200MF (paper flavour) uses the kit's reference checkpoint
(`training.reference` makes it), and ConvNeXt-Tiny / EfficientNet-B7 theirs (`models.app_reference`); other
variants and flavours get seeded random weights, said loudly, since drift measured on an untrained
network says little.
"""

from __future__ import annotations

from pathlib import Path

from converters.reference import KerasReference, ModelIdentity
from edge.errors import ConfigError, WeightsError, first_line
from edge.preprocessing import PreprocessSpec
from models.app_reference import SEED as RANDOM_SEED  # the one seed of every random model
from models.labels import default_labels
from models.reference import DEFAULT_CHECKPOINT, read_card
from models.zoo import build_model, model_spec


HEADS = ("classifier", "none")


def read_labels(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read labels file {path} ({exc}); pass a UTF-8 text file, one label per line") from None
    labels = [line.strip() for line in lines if line.strip()]
    if not labels:
        raise ConfigError(f"labels file {path} has no labels; write one label per line")
    return labels


def _relative(path: Path) -> str:
    """The path relative to the working directory when it is inside it (reproducible metadata), else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _class_count(labels: list[str] | None, num_classes: int | None) -> int:
    classes = num_classes or (len(labels) if labels else 1000)
    if labels and len(labels) != classes:
        raise ConfigError(f"{len(labels)} labels but the model has {classes} classes; make --classes and the labels agree")
    return classes


def _reference(model, identity: ModelIdentity, preprocessing: PreprocessSpec, labels: list[str] | None, info: dict,
               head: str, log) -> KerasReference:
    """The reference of a loaded classifier, or of its pooled features for head "none"."""
    from dataclasses import replace

    from models.heads import pooled_features

    if head == "none":
        model = pooled_features(model)
        log(f"head: none; the model outputs {model.output_shape[-1]} pooled features per image, validated by cosine "
            "similarity against the reference")
        return KerasReference(model, replace(identity, name=f"{identity.name}_features", head=False), preprocessing,
                              [], info)
    return KerasReference(model, identity, preprocessing, labels or default_labels(identity.num_classes, log), info)


def load_application(name: str, weights: str | Path | None = None, *, num_classes: int | None = None,
                     labels_path: str | Path | None = None, input_size: int | None = None, head: str = "classifier",
                     log=print) -> KerasReference:
    """A keras.applications architecture (models.applications) with weights from a path, or seeded random."""
    from models.app_reference import apply as apply_reference
    from models.app_reference import checkpoint_path, reference_card, seeded
    from models.applications import get_application
    from edge.digest import file_sha256

    if head not in HEADS:
        raise ConfigError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
    app = get_application(name)
    card = reference_card(name) if weights is None and labels_path is None else None
    if card and num_classes not in (None, card["num_classes"]):
        card = None
    labels = read_labels(labels_path) if labels_path else (card or {}).get("labels")
    classes = _class_count(labels, num_classes)
    size = input_size or app.size
    model = seeded(name, classes, size)  # the seed the kit's reference was made on
    if card:
        path = checkpoint_path(name)
        apply_reference(model, path, card)
        info = {"path": _relative(path), "sha256": file_sha256(path),
                "description": "the kit's reference (seeded backbone conditioned on the photographs, linear "
                               "classifier trained on them; not ImageNet weights)"}
        log(f"weights: the kit's reference {_relative(path)} (held-out top-1 {card['heldout_top1']:.1%} at "
            f"{card['input_size']}px; a seeded backbone with a trained linear classifier, not ImageNet weights; "
            "pass --weights PATH for real ones)")
    elif weights is None:
        info = {"path": None, "sha256": None, "description": f"random (seed {RANDOM_SEED})"}
        log(f"weights: RANDOM (seed {RANDOM_SEED}); no reference checkpoint for {name} with {classes} classes, so "
            "drift is measured on an untrained network; pass --weights PATH (a Keras .weights.h5 or .keras file)")
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist; pass a Keras .weights.h5 or .keras file")
        try:
            model.load_weights(str(path))
        except Exception as exc:  # Keras raises ValueError/OSError/KeyError variants for files that do not fit
            raise WeightsError(f"{path} does not fit {name} with {classes} classes at {size}x{size} "
                               f"({first_line(exc, 200)})") from None
        info = {"path": _relative(path), "sha256": file_sha256(path),
                "description": "Keras weights"}
        log(f"weights: {_relative(path)}")
    identity = ModelIdentity(name, name, "keras.applications", classes)
    return _reference(model, identity, app.preprocessing(size), labels, info, head, log)


def load_source(variant: str = "200mf", flavour: str = "paper", weights: str | Path | None = None, *,
                num_classes: int | None = None, labels_path: str | Path | None = None, input_size: int = 224,
                normalize_in_model: bool | None = None, head: str = "classifier", log=print) -> KerasReference:
    """Build the reference model and give it weights: the user's, the kit's checkpoint, or random.

    head "none" keeps the weights' whole model for loading, then cuts it before the classifier: the
    reference and every artifact output pooled features.
    """
    from models.weights import load_weights

    if head not in HEADS:
        raise ConfigError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")

    card = None
    use_default = weights is None and variant.lower() == "200mf" and flavour == "paper"
    if use_default:
        weights = DEFAULT_CHECKPOINT
        if not Path(weights).is_file():
            raise WeightsError(f"the kit's reference checkpoint {weights} is missing; restore it from git or run "
                               "python -m training.reference")
    if weights is not None:
        card = read_card(Path(weights))
    labels = read_labels(labels_path) if labels_path else (card or {}).get("labels")
    classes = _class_count(labels, num_classes)
    spec = model_spec(variant, flavour, num_classes=classes, input_size=input_size,
                      normalize_in_model=normalize_in_model)
    if weights is None:
        import keras

        keras.utils.set_random_seed(RANDOM_SEED)
        model = build_model(spec)
        info = {"path": None, "sha256": None, "description": f"random (seed {RANDOM_SEED})"}
        log(f"weights: RANDOM (seed {RANDOM_SEED}); the kit has no reference checkpoint for {spec.name}, so drift "
            "is measured on an untrained network; pass --weights PATH for real weights")
    else:
        model = build_model(spec)
        report = load_weights(model, weights)
        kind = "the kit's reference checkpoint" if use_default else report.format
        shown = _relative(Path(weights))
        info = {"path": shown, "sha256": report.sha256, "description": kind}
        note = f", held-out top-1 {card['heldout_top1']:.1%}" if card and "heldout_top1" in card else ""
        log(f"weights: {kind} {shown} (sha256 {report.sha256[:12]}{note})")
    identity = ModelIdentity(spec.name, spec.variant, spec.flavour.name, spec.num_classes)
    return _reference(model, identity, spec.preprocessing, labels, info, head, log)

