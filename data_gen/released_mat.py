"""The Pitts-250K ground truth as distributed: MATLAB ``.mat`` files, read with ``scipy.io.loadmat``.

Two layouts are read:

- ``dbStruct`` (``pitts250k_{train,val,test}.mat``, the NetVLAD split files): a struct whose fields
  ``dbImage``/``utmDb`` list the database images and their UTM (2 x N), and ``qImage``/``utmQ`` the
  query images; positions are keyed by image path (queries kept apart, see
  :class:`~data_gen.released_coords.Coordinates`);
- a plain numeric UTM matrix (2 x N or N x 2, e.g. ``pittsburgh_database_10586_utm.mat``) with one
  column per PLACE: place ``i`` is the number that starts ``000/00000i_pitch1_yaw1.jpg``, whose 24
  views (2 pitches x 12 yaws) share it.

Neither layout names a UTM zone, so ``--utm-zone`` is still required. MATLAB v7.3 files (HDF5) are
not read by ``loadmat``; they are refused with a message saying so. Nothing here unpickles:
``loadmat`` decodes MATLAB's own format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_gen.released_coords import Coordinates, normalise_key
from ial_core.errors import DataError, SkipReport, handle

_DB_FIELDS = (("dbImage", "utmDb"), ("qImage", "utmQ"))


def read_mat_coordinates(path, *, skip: SkipReport | None = None) -> Coordinates:
    """Read a Pitts-250K ``.mat`` ground-truth file in either layout (see the module docstring)."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(str(path), squeeze_me=False, struct_as_record=True)
    except NotImplementedError as exc:     # v7.3 = HDF5
        raise DataError(f"MATLAB v7.3 (HDF5) file; re-save it with `save(..., '-v7')` ({exc})",
                        path=path) from exc
    except Exception as exc:               # scipy raises ValueError, TypeError, OSError, ...
        raise DataError(f"not a readable MATLAB .mat file ({type(exc).__name__}: {exc})",
                        path=path) from exc
    variables = {k: v for k, v in mat.items() if not k.startswith("__")}
    if "dbStruct" in variables:
        return _from_db_struct(path, variables["dbStruct"], skip)
    return _from_matrix(path, variables)


def _struct_fields(path: Path, value) -> dict:
    if not (isinstance(value, np.ndarray) and value.dtype.names and value.size == 1):
        raise DataError("'dbStruct' is not a MATLAB struct", path=path)
    record = value.reshape(-1)[0]
    return {name: record[name] for name in value.dtype.names}


def _cell_strings(path: Path, name: str, value) -> list[str]:
    """A cell array of strings (or a char matrix) as a list of Python strings."""
    array = np.asarray(value)
    if array.dtype.kind == "U":            # char matrix: one padded row per name
        return ["".join(row).rstrip() for row in array.reshape(array.shape[0], -1)] \
            if array.ndim > 1 else [str(array.item()) if array.size == 1 else "".join(array)]
    out = []
    for i, item in enumerate(array.reshape(-1)):
        item = np.asarray(item)
        if item.dtype.kind != "U" or item.size != 1:
            raise DataError(f"{name}[{i}] is not a string (got {item.dtype} of shape {item.shape})",
                            path=path)
        out.append(str(item.reshape(-1)[0]))
    return out


def _utm_columns(path: Path, name: str, value, count: int | None) -> np.ndarray:
    """A 2 x N or N x 2 numeric UTM array as an N x 2 float array (easting, northing)."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or array.ndim != 2 or 2 not in array.shape:
        raise DataError(f"{name} is not a 2 x N UTM matrix (got {array.dtype} of shape "
                        f"{array.shape})", path=path)
    if count is None:
        array = array.T if array.shape[0] == 2 else array      # MATLAB's usual 2 x N
    elif array.shape == (2, count):
        array = array.T
    elif array.shape != (count, 2):
        positions = array.shape[1] if array.shape[0] == 2 else array.shape[0]
        raise DataError(f"{name} has {positions} positions for {count} images", path=path)
    array = array.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise DataError(f"{name} column {int(bad[0])} is not finite: {array[bad[0]].tolist()}",
                        path=path)
    return array


def _from_db_struct(path: Path, value, skip) -> Coordinates:
    fields = _struct_fields(path, value)
    tables = []
    for image_field, utm_field in _DB_FIELDS:
        if image_field not in fields:
            tables.append({})
            continue
        if utm_field not in fields:
            raise DataError(f"dbStruct has {image_field} but no {utm_field}", path=path)
        names = _cell_strings(path, f"dbStruct.{image_field}", fields[image_field])
        utm = _utm_columns(path, f"dbStruct.{utm_field}", fields[utm_field], len(names))
        table: dict = {}
        for name, (east, north) in zip(names, utm.tolist()):
            key = normalise_key(name)
            if key in table and table[key] != (east, north):
                handle(DataError(f"{key!r} listed twice in {image_field} with different positions",
                                 path=path), skip, "bad_coordinates")
                continue
            table[key] = (east, north)
        tables.append(table)
    if not tables[0] and not tables[1]:
        raise DataError("dbStruct has neither dbImage/utmDb nor qImage/utmQ", path=path)
    return Coordinates(tables[0], str(path), "mat-dbstruct", queries=tables[1], files=[str(path)])


def _from_matrix(path: Path, variables: dict) -> Coordinates:
    numeric = {k: v for k, v in variables.items()
               if isinstance(v, np.ndarray) and v.dtype.kind in "iuf" and v.ndim == 2 and 2 in v.shape
               and max(v.shape) > 0}
    if len(numeric) != 1:
        raise DataError(f"expected a 'dbStruct' or exactly one 2 x N UTM matrix, found "
                        f"{sorted(numeric) or 'none'} among variables {sorted(variables)}", path=path)
    (name, value), = numeric.items()
    utm = _utm_columns(path, name, value, None)
    positions = {i: (e, n) for i, (e, n) in enumerate(utm.tolist())}
    return Coordinates(positions, str(path), "mat-matrix", files=[str(path)])
