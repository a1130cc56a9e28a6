"""The render interface types (fixed: the dataset builder codes against them)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_SIZE = 128


@dataclass(frozen=True)
class ViewSpec:
    """Where the camera stands and looks; ``seed`` varies only the nuisances."""

    street: str
    district: str
    highway: str            # OSM highway class
    easting: float          # UTM metres
    northing: float
    chainage_m: float       # distance along the street from its start
    street_length_m: float
    heading: float          # degrees relative to the street: 0 ahead, 90 left, 180 behind, 270 right
    seed: int


@dataclass
class RenderedView:
    image: np.ndarray                                 # uint8 H x W x 3
    caption: str
    attributes: dict = field(default_factory=dict)    # JSON-serialisable description of the drawing
