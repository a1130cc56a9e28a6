"""Address text in the forms the AddressCLIP annotation files use.

- canonical (sub-street) address: ``"{street} & {cross street}, {district}"`` (the class label);
- street-level address: ``"{street}, {district}"`` (what SA scores, and what the LLM answers);
- verbose address: the sentence form of the released files,
  ``"located in {district}, specifically on a section of {street} that meets {cross street}"``.

A street with no cross street in the extract has a single sub-street named by the street alone.
"""

from __future__ import annotations


def sub_street_name(street: str, cross_street: str) -> str:
    return f"{street} & {cross_street}" if cross_street else street


def canonical_address(street: str, cross_street: str, district: str) -> str:
    return f"{sub_street_name(street, cross_street)}, {district}"


def street_address(street: str, district: str) -> str:
    return f"{street}, {district}"


def verbose_address(street: str, cross_street: str, district: str) -> str:
    if cross_street:
        return (f"located in {district}, specifically on a section of {street} "
                f"that meets {cross_street}")
    return f"located in {district}, specifically on {street}"


def full_address(street: str, district: str, city: str, country: str = "") -> str:
    """Street-level address with city (and country), as LLaVA-IAL answers it."""
    parts = [street, district, city] + ([country] if country else [])
    return ", ".join(p for p in parts if p)
