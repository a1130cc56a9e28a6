"""Semantic address partition on real streets, and the merge rule on hand-made cases."""

from __future__ import annotations

import numpy as np
import shapely

from data_gen.partition import PartitionConfig, Piece, finalise, initial_pieces, merge_small


def _junctions_of(city, street):
    return [(shapely.Point(i.x, i.y), set(i.streets) - {street})
            for i in city.intersections if street in i.streets]


def test_every_sub_street_of_aleksanterinkatu_is_bounded_by_real_cross_streets(helsinki):
    pieces = [p for p in initial_pieces(helsinki) if p.street == "Aleksanterinkatu"]
    assert len(pieces) >= 5
    line = helsinki.street("Aleksanterinkatu").parts[0]
    junctions = _junctions_of(helsinki, "Aleksanterinkatu")
    for piece in pieces:
        for boundary in (piece.start_m, piece.end_m):
            if 0.0 < boundary < line.length:        # interior cut: must sit on a real junction
                at = line.interpolate(boundary)
                assert min(at.distance(p) for p, _ in junctions) < 1.0, (piece, boundary)
        # the named cross street really meets the street at one of the piece's boundaries
        ends = [line.interpolate(piece.start_m), line.interpolate(piece.end_m)]
        crossing = {name for p, names in junctions for name in names
                    if min(p.distance(e) for e in ends) < PartitionConfig.min_gap_m}
        assert piece.cross_street in crossing, piece


def test_pieces_tile_each_part_without_gaps(helsinki, helsinki_pieces):
    by_part = {}
    for p in helsinki_pieces:
        by_part.setdefault((p.street, p.part), []).append(p)
    for (street, part), pieces in by_part.items():
        length = helsinki.street(street).parts[part].length
        starts = [p.start_m for p in pieces]
        ends = [p.end_m for p in pieces]
        assert starts[0] == 0.0 and abs(ends[-1] - length) < 1e-6
        assert starts[1:] == ends[:-1]
        assert all(e - s >= 0 for s, e in zip(starts, ends))


def test_cuts_closer_than_min_gap_are_dropped(helsinki):
    coarse = initial_pieces(helsinki, PartitionConfig(min_gap_m=120.0))
    fine = initial_pieces(helsinki, PartitionConfig(min_gap_m=10.0))
    assert len(coarse) < len(fine)
    interior = [p for p in coarse if p.start_m > 0]
    assert all(p.length_m >= 120.0 or p.end_m == helsinki.street(p.street).parts[p.part].length
               for p in interior)


def test_sub_street_names_are_unique_addresses(helsinki, helsinki_pieces):
    final = finalise([p for p in helsinki_pieces], helsinki)
    addresses = [(p.name, p.district) for p in final]
    assert len(addresses) == len(set(addresses))


def _piece(start, end, cross):
    return Piece("Main St", 0, start, end, cross, cross, cross_street=cross)


def test_merge_small_folds_small_pieces_into_the_smaller_neighbour_keeping_the_bigger_name():
    pieces = [_piece(0, 10, "A"), _piece(10, 20, "B"), _piece(20, 30, "C"), _piece(30, 40, "D")]
    final, owner = merge_small(pieces, np.array([9, 2, 6, 0]), min_locations=5)
    # D (0) merges into C (its only neighbour) -> C has 6; B (2) merges into C (6) rather than A (9)
    assert [p.cross_street for p in final] == ["A", "C"]
    assert [p.locations for p in final] == [9, 8]
    assert [(p.start_m, p.end_m) for p in final] == [(0, 10), (10, 40)]
    assert owner.tolist() == [0, 1, 1, 1]


def test_merge_small_drops_parts_without_locations_and_keeps_lone_small_parts():
    pieces = [_piece(0, 10, "A"), Piece("Side St", 0, 0, 5, cross_street="")]
    final, owner = merge_small(pieces, np.array([3, 0]), min_locations=5)
    assert [p.street for p in final] == ["Main St"]     # a lone piece cannot merge; 0 -> dropped
    assert owner.tolist() == [0, -1]
