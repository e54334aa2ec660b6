"""Sphinx directives that build reference pages from the code, so they cannot drift.

``.. step-arguments:: dotted.Class``
    The ``--name`` options of a step or pipeline, from its stpipe ``spec`` (type,
    default, allowed values, and the spec line's comment).
``.. pipeline-steps:: dotted.Pipeline``
    The steps a pipeline runs, in order, with their classes.
``.. catalog-columns::``
    Every catalog column with its type, unit and meaning (``CATALOG_COLUMNS``, which
    the schema is tested against).
``.. cli-help::``
    ``jwst-asteroids --help`` and the help of every subcommand, from the parser itself.
"""

import argparse
import importlib
import re
import textwrap

from docutils import nodes
from docutils.parsers.rst import Directive

_SPEC_LINE = re.compile(r"^\s*(?P<name>\w+)\s*=\s*(?P<kind>\w+)\((?P<args>.*?)\)\s*(#\s*(?P<doc>.*))?$")


def _import(dotted):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def parse_spec(spec):
    """Parse an stpipe spec string.

    Parameters
    ----------
    spec : str
        The ``spec`` class attribute of a Step.

    Returns
    -------
    list of tuple
        ``(name, type, arguments, comment)`` per parameter, in spec order.
    """
    rows = []
    for line in textwrap.dedent(spec).splitlines():
        if not line.strip():
            continue
        match = _SPEC_LINE.match(line)
        if match is None:
            raise ValueError(f"cannot read spec line {line!r}")
        rows.append((match["name"], match["kind"], match["args"], (match["doc"] or "").strip()))
    return rows


def _paragraph(text):
    para = nodes.paragraph()
    para += nodes.Text(text)
    return para


class StepArguments(Directive):
    """List a step's parameters from its spec."""

    required_arguments = 1

    def run(self):
        cls = _import(self.arguments[0])
        items = nodes.definition_list()
        for name, kind, args, doc in parse_spec(cls.spec):
            term = nodes.term()
            term += nodes.literal(text=f"--{name}")
            term += nodes.Text(f" ({kind}, {args})" if args else f" ({kind})")
            definition = nodes.definition()
            definition += _paragraph(doc or "(no description in the spec)")
            item = nodes.definition_list_item()
            item += term
            item += definition
            items += item
        return [items]


class PipelineSteps(Directive):
    """List the steps of a pipeline in order."""

    required_arguments = 1

    def run(self):
        cls = _import(self.arguments[0])
        listing = nodes.enumerated_list()
        for name, step in cls.step_defs.items():
            entry = nodes.list_item()
            para = nodes.paragraph()
            para += nodes.literal(text=name)
            para += nodes.Text(" — ")
            para += nodes.literal(text=f"{step.__module__}.{step.__name__}")
            entry += para
            listing += entry
        return [listing]


class CatalogColumns(Directive):
    """Table of the catalog's columns."""

    def run(self):
        from jwst_asteroid_step.datamodels.catalog import CATALOG_COLUMNS

        table = nodes.table()
        group = nodes.tgroup(cols=4)
        table += group
        for width in (14, 8, 10, 60):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        body = nodes.tbody()
        group += body
        head += self._row(("column", "type", "unit", "meaning"))
        for name, dtype, unit, description in CATALOG_COLUMNS:
            body += self._row((name, _dtype_name(dtype), unit or "—", description), literal_first=True)
        return [table]

    @staticmethod
    def _row(cells, literal_first=False):
        row = nodes.row()
        for i, text in enumerate(cells):
            entry = nodes.entry()
            para = nodes.paragraph()
            para += nodes.literal(text=text) if (literal_first and i == 0) else nodes.Text(text)
            entry += para
            row += entry
        return row


def _dtype_name(dtype):
    import numpy as np

    dt = np.dtype(dtype)
    return {"b": "bool", "i": "int", "f": "float", "S": f"string ({dt.itemsize})"}.get(dt.kind, dt.name) + (
        f"{dt.itemsize * 8}" if dt.kind in "if" else "")


class CliHelp(Directive):
    """``jwst-asteroids --help`` and every subcommand's help."""

    def run(self):
        from jwst_asteroid_step.cli import build_parser

        parser = build_parser()
        out = []
        out.append(self._block("jwst-asteroids --help", parser.format_help()))
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, sub in subparsers.choices.items():
            section = nodes.section(ids=[f"jwst-asteroids-{name}"])
            section += nodes.title(text=f"jwst-asteroids {name}")
            section += self._block(f"jwst-asteroids {name} --help", sub.format_help())
            out.append(section)
        return out

    @staticmethod
    def _block(command, text):
        return nodes.literal_block(text=f"$ {command}\n{text}", language="text")


def setup(app):
    """Register the directives."""
    app.add_directive("step-arguments", StepArguments)
    app.add_directive("pipeline-steps", PipelineSteps)
    app.add_directive("catalog-columns", CatalogColumns)
    app.add_directive("cli-help", CliHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
