"""Open information extraction; ``evaluate`` scores extractions on BenchIE, CaRB and Re-OIE2016
as the published tables do."""
from .evaluate import (
    Extraction,
    benchie_scores,
    carb_scores,
    read_benchie_extractions,
    read_benchie_gold,
    read_carb_extractions,
    read_carb_gold,
    read_reoie2016,
    reoie2016_scores,
)

__all__ = [
    "Extraction",
    "benchie_scores",
    "carb_scores",
    "read_benchie_extractions",
    "read_benchie_gold",
    "read_carb_extractions",
    "read_carb_gold",
    "read_reoie2016",
    "reoie2016_scores",
]
