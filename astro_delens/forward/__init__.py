"""Physics in the loop: re-lensing check, lenstronomy refinement and linear source inversions."""

from .inversion import SourceInversion, invert_source, shapelet_scale
from .pixelated import (
    DEFAULT_EVIDENCE_THRESHOLD,
    EvidenceCheck,
    PixelatedSource,
    evidence_check,
    invert_pixelated,
)
from .refine import DEFAULT_STD_FLOOR, SOURCE_MODELS, SYSTEMATIC_STD, RefineResult, refine
from .relens import (
    DEFAULT_AMPLITUDE_RANGE,
    DEFAULT_ARC_CHI2_THRESHOLD,
    DEFAULT_CHI2_THRESHOLD,
    RelensResult,
    relens_check,
    render_lensed_source,
)

__all__ = [
    "refine",
    "RefineResult",
    "SOURCE_MODELS",
    "DEFAULT_STD_FLOOR",
    "SYSTEMATIC_STD",
    "invert_source",
    "SourceInversion",
    "shapelet_scale",
    "invert_pixelated",
    "PixelatedSource",
    "evidence_check",
    "EvidenceCheck",
    "DEFAULT_EVIDENCE_THRESHOLD",
    "relens_check",
    "RelensResult",
    "render_lensed_source",
    "DEFAULT_CHI2_THRESHOLD",
    "DEFAULT_ARC_CHI2_THRESHOLD",
    "DEFAULT_AMPLITUDE_RANGE",
]
