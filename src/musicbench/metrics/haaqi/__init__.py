"""HAAQI (Kates & Arehart 2016), pyclarity's ``compute_haaqi`` in torch: ``haaqi(reference, processed, ...)``."""

from musicbench.metrics.haaqi.cochlea import ear_model
from musicbench.metrics.haaqi.index import haaqi, haaqi_v1

__all__ = ["ear_model", "haaqi", "haaqi_v1"]
