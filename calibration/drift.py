"""Accuracy drift of an artifact against its reference model, and the budgets it must stay within.

Pure numpy: the inputs are the two models' logits on the same images (and labels when known).
One place holds the budgets; callers may override them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from edge.classifier import softmax  # the one softmax, on the device side

WORST_SHOWN = 5


@dataclass(frozen=True)
class Budget:
    """Limits one artifact must meet. None: not checked."""

    min_top1_agreement: float
    max_abs_error_of_range: float | None = None  # max |logit error| / (reference logit max - min)
    max_accuracy_drop: float | None = None       # points of top-1 accuracy lost (when labels exist)
    min_cosine: float | None = None              # worst image's cosine similarity (feature extractors)


# float32: the same function up to rounding; float16 / dynamic / int8: post-training quantization.
BUDGETS: dict[str, Budget] = {
    "float32": Budget(min_top1_agreement=1.0, max_abs_error_of_range=1e-4),
    "float16": Budget(min_top1_agreement=0.995),
    "dynamic": Budget(min_top1_agreement=0.99),
    "int8": Budget(min_top1_agreement=0.98, max_accuracy_drop=1.0),
}


# Feature extractors (--head none): no classes to agree on; each image's feature vector must point the
# same way as the reference's. Measured at the worst of the reference's 176 held-out crops (368
# features, TFLite): float32 0.999999999998, float16 0.9999994, dynamic 0.99991, int8 0.99933.
FEATURE_BUDGETS: dict[str, Budget] = {
    "float32": Budget(min_top1_agreement=0.0, max_abs_error_of_range=1e-4, min_cosine=0.99999),
    "float16": Budget(min_top1_agreement=0.0, min_cosine=0.9999),
    "dynamic": Budget(min_top1_agreement=0.0, min_cosine=0.999),
    "int8": Budget(min_top1_agreement=0.0, min_cosine=0.99),
}


def budget_for(precision: str, features: bool = False, **overrides) -> Budget:
    """The default budget of a precision (of a classifier, or of a feature extractor), with any field
    overridden (None values are ignored)."""
    table = FEATURE_BUDGETS if features else BUDGETS
    if precision not in table:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(table)}")
    return replace(table[precision], **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class Drift:
    """How far an artifact's outputs are from the reference's on the same images."""

    images: int
    top1_agreement: float
    top5_agreement: float            # share of images whose reference top-1 is in the artifact's top 5
    max_abs_error: float
    mean_abs_error: float
    logit_range: float
    max_abs_error_of_range: float
    cosine_min: float
    cosine_mean: float
    sqnr_db: float
    kl_mean: float                   # KL(reference softmax || artifact softmax), mean over images
    reference_accuracy: float | None = None
    artifact_accuracy: float | None = None
    worst: list[dict] = field(default_factory=list)

    @property
    def accuracy_drop(self) -> float | None:
        """Points of top-1 accuracy lost (positive: the artifact is worse)."""
        if self.reference_accuracy is None or self.artifact_accuracy is None:
            return None
        return 100.0 * (self.reference_accuracy - self.artifact_accuracy)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["accuracy_drop"] = self.accuracy_drop
        return data

    def violations(self, budget: Budget) -> list[str]:
        """Each budget line this drift breaks, in words; empty when within budget."""
        out = []
        if self.top1_agreement < budget.min_top1_agreement:
            out.append(f"top-1 agreement {self.top1_agreement:.2%} < {budget.min_top1_agreement:.2%}")
        if budget.max_abs_error_of_range is not None and self.max_abs_error_of_range > budget.max_abs_error_of_range:
            out.append(f"max-abs logit error {self.max_abs_error_of_range:.2e} of the logit range "
                       f"> {budget.max_abs_error_of_range:.0e}")
        drop = self.accuracy_drop
        if budget.max_accuracy_drop is not None and drop is not None and drop > budget.max_accuracy_drop:
            out.append(f"accuracy drop {drop:.2f} points > {budget.max_accuracy_drop:.2f}")
        if budget.min_cosine is not None and self.cosine_min < budget.min_cosine:
            out.append(f"worst-image cosine similarity {self.cosine_min:.6f} < {budget.min_cosine}")
        return out


def measure(reference: np.ndarray, artifact: np.ndarray, labels: np.ndarray | None = None,
            names: list[str] | None = None) -> Drift:
    """Drift of `artifact` logits from `reference` logits, both (images, classes)."""
    ref = np.asarray(reference, np.float64)
    out = np.asarray(artifact, np.float64)
    if ref.shape != out.shape or ref.ndim != 2:
        raise ValueError(f"logits must be two (images, classes) arrays of one shape, got {ref.shape} and {out.shape}")
    n = ref.shape[0]
    ref_top1 = ref.argmax(axis=1)
    out_top1 = out.argmax(axis=1)
    k = min(5, ref.shape[1])
    out_top5 = np.argsort(-out, axis=1)[:, :k]
    err = np.abs(out - ref)
    per_image_max = err.max(axis=1)
    logit_range = float(ref.max() - ref.min())
    dot = (ref * out).sum(axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cosine = np.where(norms > 0, dot / np.maximum(norms, 1e-300), 1.0)
    noise = float(((out - ref) ** 2).sum())
    sqnr = float("inf") if noise == 0 else 10.0 * np.log10(float((ref ** 2).sum()) / noise)
    p, q = softmax(ref), softmax(out)
    kl = (p * (np.log(np.maximum(p, 1e-300)) - np.log(np.maximum(q, 1e-300)))).sum(axis=1)
    names = names or [str(i) for i in range(n)]
    worst = [
        {"image": names[i], "max_abs_error": float(per_image_max[i]), "kl": float(kl[i]),
         "reference_top1": int(ref_top1[i]), "artifact_top1": int(out_top1[i])}
        for i in np.argsort(-kl)[:WORST_SHOWN]
    ]
    drift = Drift(
        images=n,
        top1_agreement=float(np.mean(ref_top1 == out_top1)),
        top5_agreement=float(np.mean([ref_top1[i] in out_top5[i] for i in range(n)])),
        max_abs_error=float(err.max()),
        mean_abs_error=float(err.mean()),
        logit_range=logit_range,
        max_abs_error_of_range=float(err.max() / logit_range) if logit_range > 0 else float(err.max()),
        cosine_min=float(cosine.min()),
        cosine_mean=float(cosine.mean()),
        sqnr_db=sqnr,
        kl_mean=float(kl.mean()),
        worst=worst,
    )
    if labels is not None:
        labels = np.asarray(labels)
        drift.reference_accuracy = float(np.mean(ref_top1 == labels))
        drift.artifact_accuracy = float(np.mean(out_top1 == labels))
    return drift
