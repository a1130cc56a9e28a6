"""Configuration dataclasses from the command line and YAML files: the toolkit's one mechanism.

Every entry point declares its settings as one or more dataclasses whose field defaults are *the*
defaults and whose ``metadata["help"]`` is the flag's help (:func:`option`). :func:`parse_config`
parses them with transformers' ``HfArgumentParser``:

- flags are the field names, ``--batch_size`` (``--batch-size`` is accepted too);
- booleans are spelled ``--flag true`` / ``--flag false`` (``--flag`` alone means true; there is
  no ``--no_flag``);
- an optional field (``int | None``...) is set to None with ``--field none``;
- ``--config FILE.yaml`` supplies values first and flags on the command line override them. The
  file is a flat mapping of field names, or a mapping of section names to such mappings when the
  caller names its sections (stage one's ``config.yaml`` is written that way).
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

NONE_WORDS = ("none", "null")


def option(default=dataclasses.MISSING, help: str = "", *, default_factory=dataclasses.MISSING, **metadata):
    """A dataclass field with its flag's help text (``metadata["help"]``)."""
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


def usage_error(prog: str, message: str) -> typing.NoReturn:
    """Exit as argparse does for a bad flag value (status 2), for checks made after parsing."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _is_optional(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _none_or(parse):
    def parse_or_none(text: str):
        return None if text.lower() in NONE_WORDS else parse(text)
    parse_or_none.__name__ = getattr(parse, "__name__", "value")   # argparse names it in errors
    return parse_or_none


def _accept_none(parser, classes) -> None:
    """Let ``--field none`` set an optional field to None (HfArgumentParser parses only its type),
    and ``--flag`` alone mean true for an optional boolean too (``bool | None``)."""
    hints = {f.name: typing.get_type_hints(cls).get(f.name, f.type)
             for cls in classes for f in dataclasses.fields(cls)}
    optional = {name for name, tp in hints.items() if _is_optional(tp)}
    for action in parser._actions:      # argparse's documented-by-use list of added arguments
        if action.dest in optional and action.type is not None and action.nargs is None:
            action.type = _none_or(action.type)
            if bool in typing.get_args(hints[action.dest]):
                action.nargs, action.const = "?", True


def _flatten(values: Mapping, sections: Mapping[str, type] | None, source: str, parser) -> dict:
    """A flat {field: value} from a YAML mapping (nested by section when ``sections`` is given)."""
    if not sections:
        return dict(values)
    flat = {}
    for name, value in values.items():
        if name in sections and isinstance(value, Mapping):
            flat.update(value)
        elif name in sections:
            parser.error(f"--config {source}: section {name!r} must be a mapping of setting: value")
        else:
            flat[name] = value
    return flat


def read_yaml_settings(path: Path, classes: Sequence[type], parser, *,
                       sections: Mapping[str, type] | None = None) -> dict:
    """The settings of a ``--config`` file, checked against the fields of ``classes``."""
    if not path.is_file():
        parser.error(f"--config {path}: no such file")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        parser.error(f"--config {path}: expected a mapping of setting: value")
    values = _flatten(values, sections, str(path), parser)
    known = {f.name for cls in classes for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        parser.error(f"--config {path}: unknown settings {unknown}")
    return values


def _make_positional(parser, names: Sequence[str]) -> None:
    """Turn the flags of the fields ``names`` into positional arguments, in the order given
    (HfArgumentParser makes every field a flag; ``predict IMAGES...`` takes its inputs bare)."""
    for name in names:
        action = next(a for a in parser._actions if a.dest == name)
        for opt in action.option_strings:
            del parser._option_string_actions[opt]
        action.option_strings = []
        parser._actions.remove(action)      # positionals are consumed in the order of _actions
        parser._actions.append(action)


def build_parser(classes: Sequence[type], *, description: str = "", prog: str | None = None,
                 positional: Sequence[str] = ()):
    """The ``HfArgumentParser`` of ``classes``, with ``--config`` and ``none`` for optional fields;
    the fields named in ``positional`` are taken without a flag."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(list(classes), description=description, prog=prog)
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML file of settings; command-line flags override it")
    _accept_none(parser, classes)
    _drop_negations(parser)
    _make_positional(parser, positional)
    return parser


def _drop_negations(parser) -> None:
    """Remove the ``--no_flag`` twins HfArgumentParser adds for booleans that default to true: the
    toolkit spells every boolean one way, ``--flag false``, so a second spelling is an error."""
    for action in list(parser._actions):
        names = action.option_strings
        if names and action.const is False and all(n.startswith(("--no_", "--no-")) for n in names):
            parser._remove_action(action)
            for name in names:
                parser._option_string_actions.pop(name, None)
            for group in parser._action_groups:
                if action in group._group_actions:
                    group._group_actions.remove(action)


def _explicit_flags(parser, argv: Sequence[str]) -> set[str]:
    """Names of the fields that ``argv`` sets (``--name value``, ``--name=value``)."""
    by_option = {opt: action.dest for action in parser._actions for opt in action.option_strings}
    named = set()
    for token in argv:
        if token.startswith("--"):
            dest = by_option.get(token.split("=", 1)[0])
            if dest is not None:
                named.add(dest)
    return named - {"config", "help"}


def parse_config(classes, argv: Sequence[str] | None = None, *, description: str = "",
                 prog: str | None = None, sections: Mapping[str, type] | None = None,
                 with_explicit: bool = False, positional: Sequence[str] = (),
                 read_settings: Callable[[Path], dict] | None = None) -> Any:
    """Parse ``argv`` (default: sys.argv) into ``classes``: one dataclass, or a sequence of them
    (then a tuple, one instance each). ``--config`` names a YAML file of defaults; the fields named
    in ``positional`` are given without a flag (``prog IMAGE...``).

    ``with_explicit`` also returns the set of field names the YAML file or the flags set (what a
    resumed run must not take from its saved configuration). ``read_settings(path)`` replaces the
    reading of the ``--config`` file: it returns the flat, typed ``{field: value}`` it holds and
    raises on bad content (for checks and messages of the caller's own file layout)."""
    single = isinstance(classes, type)
    classes = [classes] if single else list(classes)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(classes, description=description, prog=prog, positional=positional)
    known, _ = parser.parse_known_args(argv)
    from_yaml = {}
    if known.config is not None:
        from_yaml = (read_settings(known.config) if read_settings is not None else
                     read_yaml_settings(known.config, classes, parser, sections=sections))
        parser.set_defaults(**from_yaml)
    namespace = vars(parser.parse_args(argv))
    namespace.pop("config")
    parsed = tuple(cls(**{f.name: namespace[f.name] for f in dataclasses.fields(cls) if f.init})
                   for cls in classes)
    result = parsed[0] if single else parsed
    if with_explicit:
        return result, set(from_yaml) | _explicit_flags(parser, argv)
    return result


def option_from(cls, name: str):
    """A field with the default and help of field ``name`` of dataclass ``cls`` (settings that an
    entry point passes on to a component whose own dataclass declares them)."""
    source = {f.name: f for f in dataclasses.fields(cls)}[name]
    if source.default_factory is not dataclasses.MISSING:
        return option(default_factory=source.default_factory, **dict(source.metadata))
    return option(source.default, **dict(source.metadata))
