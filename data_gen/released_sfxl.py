"""SF-XL / SF-IAL positions from the image file names themselves.

SF-XL names every image ``@UTM_east@UTM_north@UTM_zone@UTM_band@lat@lon@pano_id@tile@heading@pitch@
roll@height@timestamp@note@.jpg`` (fields may be empty after lon). The zone number and latitude band
say the CRS: bands ``N``-``X`` are the northern hemisphere, ``C``-``M`` the southern one, so San
Francisco's ``10@S`` is EPSG:32610 (zone 10 north; the ``S`` is a band, not "south"). Every image of one
dataset must be in the same zone. The name's lat/lon are used as given and checked against its UTM
(a disagreement beyond :data:`MAX_DISAGREEMENT_M` means the fields are not what they are taken for).
"""

from __future__ import annotations

import math
from pathlib import PurePosixPath

import numpy as np

from data_gen.released_coords import SFXL_FILENAMES, Coordinates
from ial_core.errors import DataError, SkipReport, handle, tagged_error

MAX_DISAGREEMENT_M = 50.0
_BANDS = "CDEFGHJKLMNPQRSTUVWX"


def zone_crs(zone: int, band: str) -> str:
    """EPSG code of UTM ``zone`` with latitude ``band`` (``10``, ``"S"`` -> ``"EPSG:32610"``)."""
    band = band.upper()
    if not 1 <= zone <= 60 or len(band) != 1 or band not in _BANDS:
        raise ValueError(f"UTM zone {zone}{band} is not a zone 1-60 with a latitude band C-X")
    return f"EPSG:{(32600 if band >= 'N' else 32700) + zone}"


def parse_sfxl_name(image: str) -> dict:
    """The fields of one SF-XL file name; ValueError with the reason when it is not one."""
    fields = PurePosixPath(image).name.split("@")
    if len(fields) < 7 or fields[0] != "":
        raise ValueError("not an SF-XL name '@east@north@zone@band@lat@lon@...'")
    try:
        east, north, lat, lon = (float(fields[i]) for i in (1, 2, 5, 6))
        zone = int(fields[3])
    except ValueError:
        raise ValueError("east, north, zone, lat or lon is not a number") from None
    if not all(math.isfinite(v) for v in (east, north, lat, lon)):
        raise ValueError("a coordinate is not finite")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"lat {lat} / lon {lon} out of range")
    heading = None
    if len(fields) > 9 and fields[9].strip():
        try:
            heading = float(fields[9])
        except ValueError:
            raise ValueError(f"heading {fields[9]!r} is not a number") from None
        if not math.isfinite(heading):
            raise ValueError(f"heading {fields[9]!r} is not finite")
        heading %= 360.0
    return {"easting": east, "northing": north, "crs": zone_crs(zone, fields[4]),
            "zone": f"{zone}{fields[4].upper()}",
            "lat": lat, "lon": lon, "heading": heading}


def read_sfxl_names(images, *, skip: SkipReport | None = None) -> Coordinates:
    """Positions of ``images`` (dataset-relative paths) from their SF-XL names, in one zone."""
    positions, latlon, heading, crs, first = {}, {}, {}, None, None
    for image in images:
        try:
            try:
                info = parse_sfxl_name(image)
            except ValueError as exc:
                raise tagged_error(f"file name gives no position ({exc})", "bad_coordinates",
                                   path=SFXL_FILENAMES, row=image) from None
            if crs is None:
                crs, first = info["crs"], image
            elif info["crs"] != crs:
                raise tagged_error(f"UTM zone {info['zone']} ({info['crs']}) differs from {crs} of "
                                   f"{first!r}; one dataset must be in one zone", "bad_coordinates",
                                   path=SFXL_FILENAMES, row=image)
        except DataError as error:
            handle(error, skip, "bad_coordinates")
            continue
        positions[image] = (info["easting"], info["northing"])
        latlon[image] = (info["lat"], info["lon"])
        if info["heading"] is not None:
            heading[image] = info["heading"]
    if not positions:
        raise DataError("no image name carries an SF-XL position", path=SFXL_FILENAMES)
    _check_agreement(positions, latlon, crs)
    return Coordinates(positions, SFXL_FILENAMES, SFXL_FILENAMES, crs=crs, latlon=latlon,
                       heading=heading, files=[])


def _check_agreement(positions: dict, latlon: dict, crs: str) -> None:
    """The name's lat/lon and its UTM must be the same place (vectorised, one pyproj call)."""
    import pyproj

    keys = list(positions)
    utm = np.array([positions[k] for k in keys])
    ll = np.array([latlon[k] for k in keys])
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    east, north = to_utm.transform(ll[:, 1], ll[:, 0])
    error = np.hypot(np.asarray(east) - utm[:, 0], np.asarray(north) - utm[:, 1])
    bad = np.flatnonzero(~(error <= MAX_DISAGREEMENT_M))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"lat/lon {ll[i].tolist()} is {error[i]:.0f} m from UTM {utm[i].tolist()} in "
                        f"{crs} ({bad.size} image(s) disagree); not SF-XL fields?", path=SFXL_FILENAMES,
                        row=keys[i])
