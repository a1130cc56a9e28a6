"""Procedural street-view renderer: location-coded images for Image Address Localization.

No real photos can be fetched, so each sample location (street, district, chainage,
heading) is drawn procedurally with real but noisy location signal at several scales:
district palettes and building types, street road/tree/lamp traits, buildings that vary
smoothly along the street, sparse landmarks and occasional street-name signs; nuisances
(light, weather, camera, vehicles) come from the per-image seed. Pure numpy + PIL,
deterministic, a few milliseconds per 128 px image.
"""

from .render import render_view, view_mode
from .spec import DEFAULT_SIZE, RenderedView, ViewSpec

__all__ = ["DEFAULT_SIZE", "RenderedView", "ViewSpec", "render_view", "view_mode"]
