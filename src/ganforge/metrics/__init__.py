"""Sample-quality metrics: FID, KID, Inception Score, precision/recall, memorisation and the feature probe.

features.py (extractor interface, registry) -> inception.py, random_conv.py (extractors); fid.py kid.py isc.py
prc.py (the metrics on feature tensors); sources.py cache.py protocol.py evaluate.py (images in, stamped scores
out); memorization.py, probe.py (diagnostics).
"""

from ganforge.metrics.evaluate import MetricOptions, evaluate_sets
from ganforge.metrics.features import FeatureExtractor, FeatureSet, load_extractor
from ganforge.metrics.sources import FolderSource, GeneratorSource, ImageSource, StoreSource, as_source

__all__ = ["FeatureExtractor", "FeatureSet", "FolderSource", "GeneratorSource", "ImageSource", "MetricOptions",
           "StoreSource", "as_source", "evaluate_sets", "load_extractor"]
