"""The command and code blocks of README.md and docs/, and how the tests run them.

A block is run as written. The only changes are listed here, explicitly:

- **Offline reference overrides** (:func:`offline_command`, :func:`offline_python`): there is
  no CRDS server, so every ``strun`` that runs a step or pipeline, every
  ``jwst-asteroids mine``, and every ``.call(...)`` of the step or a Detector1 pipeline gets
  the ``override_<reftype>`` files of :mod:`jwst_asteroid_step.offline` (and the skips of the
  Detector1 steps whose reference files cannot be built offline) appended. Users with CRDS
  type the block as it stands.
- **File names** (:data:`FILE_SUBSTITUTIONS`): a few names that stand for the user's own
  things (a Dask scheduler's address, the repository's docs folder) are replaced.

Everything else a block needs is a file it names, laid in its working folder beforehand
(the simulated exposure ``jw01234001001_01101_00001_mirimage`` and its products) or made by
an earlier block of the same document.

Blocks are marked in the document, just before the block:

- Markdown: ``<!-- docs-test: file=NAME -->`` or ``<!-- docs-test: not-run REASON -->``;
- reStructuredText: ``.. docs-test: file=NAME`` or ``.. docs-test: not-run REASON``.

``file=NAME`` writes the block (a parameter file) to NAME for the blocks after it.
``not-run`` blocks are listed by the tests with their reasons, never run.
"""

import ast
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: The documents whose blocks are run: the README and the Sphinx site's sources.
def documents():
    """README.md and every page of docs/, in a fixed order."""
    pages = sorted(p for p in (REPO / "docs").rglob("*") if p.suffix in (".md", ".rst")
                   and "_build" not in p.parts)
    return [REPO / "README.md", *pages]


#: Example root of the documents: an exposure the tests simulate under this name.
ROOT = "jw01234001001_01101_00001_mirimage"

#: Names standing for the user's own things, and what the tests put in their place.
#: ``{scheduler}`` is a LocalCluster's address, ``{repo}`` this repository.
FILE_SUBSTITUTIONS = {
    "tcp://scheduler:8786": "{scheduler}",
    "sphinx-build -W -b html docs docs/_build/html":
        "sphinx-build -W -b html {repo}/docs docs_build/html",
}

SHELL = {"bash", "sh", "shell", "console"}
PYTHON = {"python", "py"}
FILES = {"yaml", "asdf"}
TEXT = {"", "text", "none"}

#: Words that start a command; a text block starting with one should be a shell block.
COMMANDS = ("strun", "jwst-asteroids", "pip", "pytest", "python", "sphinx-build", "$")


@dataclass
class Block:
    """One fenced (Markdown) or ``code-block`` (reStructuredText) block."""

    path: Path
    line: int
    language: str
    text: str
    file: str | None = None
    not_run: str | None = None
    kind: str = field(init=False)

    def __post_init__(self):
        lang = self.language.lower()
        if lang in SHELL:
            self.kind = "shell"
        elif lang in PYTHON:
            self.kind = "python"
        elif lang in FILES:
            self.kind = "file"
        elif lang in TEXT:
            self.kind = "text"
        else:
            raise ValueError(f"{self.where}: block language {self.language!r} is not one the "
                             f"documentation test knows how to run")
        if self.kind == "file" and self.file is None and self.not_run is None:
            raise ValueError(f"{self.where}: a {self.language} block must name its file "
                             f"(docs-test: file=NAME) so that a later block uses it")

    @property
    def where(self):
        return f"{shown(self.path)}:{self.line}"

    @property
    def first_line(self):
        return self.text.strip().splitlines()[0] if self.text.strip() else ""


def shown(path):
    """A path as the tests name it: relative to the repository when inside it."""
    path = Path(path)
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


_MARKER = re.compile(r"docs-test:\s*(?P<what>file=(?P<file>\S+)|not-run\s+(?P<reason>.+?))\s*(-->)?\s*$")


def _marker(line):
    match = _MARKER.search(line)
    if match is None:
        return {}
    if match["file"]:
        return {"file": match["file"]}
    return {"not_run": match["reason"]}


def _previous_text(lines, i):
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    return lines[j] if j >= 0 else ""


def markdown_blocks(path):
    """Fenced blocks of a Markdown file."""
    lines = Path(path).read_text().splitlines()
    blocks, i = [], 0
    fence = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
    while i < len(lines):
        match = fence.match(lines[i])
        if not match:
            i += 1
            continue
        indent, mark, language = match.groups()
        start = i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(mark):
            body.append(lines[i].removeprefix(indent))
            i += 1
        i += 1
        previous = _previous_text(lines, start)
        marker = _marker(previous) if "docs-test" in previous else {}
        blocks.append(Block(Path(path), start + 1, language, "\n".join(body) + "\n", **marker))
    return blocks


def rst_blocks(path):
    """``code-block`` blocks of a reStructuredText file.

    Raises
    ------
    ValueError
        On a ``::`` literal block: it would be shown as code and never run, so the
        documents use ``.. code-block:: <language>`` throughout.
    """
    lines = Path(path).read_text().splitlines()
    blocks = []
    directive = re.compile(r"^(\s*)\.\.\s+(code-block|code|sourcecode)::\s*(\S*)")
    for i, line in enumerate(lines):
        match = directive.match(line)
        if match is None:
            if (line.rstrip().endswith("::") and not line.lstrip().startswith("..")
                    and i + 2 < len(lines)):
                raise ValueError(f"{shown(path)}:{i + 1}: a '::' literal "
                                 f"block; use '.. code-block:: <language>'")
            continue
        indent = len(match.group(1))
        j = i + 1
        while j < len(lines) and re.match(r"^\s+:\w[\w-]*:", lines[j]):
            j += 1  # directive options
        body = []
        while j < len(lines):
            text = lines[j]
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            body.append(text)
            j += 1
        while body and not body[-1].strip():
            body.pop()
        width = min((len(t) - len(t.lstrip()) for t in body if t.strip()), default=0)
        text = "\n".join(t[width:] for t in body).strip("\n") + "\n"
        previous = _previous_text(lines, i)
        marker = _marker(previous) if "docs-test" in previous else {}
        blocks.append(Block(Path(path), i + 1, match.group(3), text, **marker))
    return blocks


def all_blocks():
    """Every block of every document, in document order."""
    out = []
    for path in documents():
        out.extend(markdown_blocks(path) if path.suffix == ".md" else rst_blocks(path))
    return out


# ---- offline substitutions ----

def logical_lines(text):
    """Shell commands of a block: continuation lines joined, blank and comment lines dropped."""
    out, current = [], ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip() and not current.strip().startswith("#"):
            out.append(current.strip())
        current = ""
    return out


def strip_comment(command):
    """A command without its trailing ``# comment`` (outside quotes)."""
    quote = None
    for i, ch in enumerate(command):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip()
    return command


def _pars_class(path):
    import asdf

    with asdf.open(path) as af:
        return af.tree.get("class", "")


def _target_class(target, cwd):
    """The Step class a strun target (alias or parameter file) runs, or None."""
    from jwst.pipeline import Detector1Pipeline
    from stpipe.utilities import import_class

    from jwst_asteroid_step import AsteroidDetector1Pipeline, AsteroidDetectStep

    aliases = {"asteroid_detect": AsteroidDetectStep, "calwebb_detector1": Detector1Pipeline,
               "calwebb_detector1_asteroid": AsteroidDetector1Pipeline}
    if target in aliases:
        return aliases[target]
    if target.endswith(".asdf"):
        return import_class(_pars_class(Path(cwd) / target))
    return None


def pipeline_overrides(refs, with_asteroid_detect=True):
    """``{step: {parameter: value}}`` that run a Detector1 pipeline offline.

    ``asteroid_detect`` gets the step's overrides when the pipeline has that step
    (``calwebb_detector1_asteroid``); jwst's own ``calwebb_detector1`` has not.
    """
    from jwst_asteroid_step.offline import detector1_offline_steps

    steps = detector1_offline_steps(refs)
    if with_asteroid_detect:
        steps["asteroid_detect"] = refs.step_overrides()
    return steps


def offline_command(command, refs, cwd):
    """A shell command with the offline reference overrides appended.

    Parameters
    ----------
    command : str
        One logical command line of a block.
    refs : OfflineReferences
        From :func:`jwst_asteroid_step.offline.build_references`.
    cwd : Path
        The folder the command runs in (parameter files are read from it).

    Returns
    -------
    str
        ``strun <step> ...`` gains ``--override_<reftype>=...``; ``strun <pipeline> ...``
        gains ``--steps.<step>.<parameter>=...``; ``jwst-asteroids mine`` gains the same as
        ``--set``.  ``--help`` and every other command are returned unchanged.
    """
    words = shlex.split(command, comments=True)
    if not words or "--help" in words or "-h" in words:
        return command
    from jwst.pipeline import Detector1Pipeline

    from jwst_asteroid_step import AsteroidDetectStep

    extra = []
    if words[0] == "strun" and len(words) > 1:
        cls = _target_class(words[1], cwd)
        if cls is not None and issubclass(cls, AsteroidDetectStep):
            extra = [f"--{k}={v}" for k, v in refs.step_overrides().items()]
        elif cls is not None and issubclass(cls, Detector1Pipeline):
            steps = pipeline_overrides(refs, "asteroid_detect" in cls.step_defs)
            extra = [f"--steps.{step}.{k}={v}" for step, pars in steps.items() for k, v in pars.items()]
    elif words[:2] == ["jwst-asteroids", "mine"]:
        extra = [f"--set=steps.{step}.{k}={v}" for step, pars in pipeline_overrides(refs).items()
                 for k, v in pars.items()]
    if not extra:
        return command
    return strip_comment(command) + " " + shlex.join(extra)


_CALLED = {"AsteroidDetectStep": "step", "AsteroidDetector1Pipeline": "asteroid pipeline",
           "Detector1Pipeline": "pipeline"}


class _AddOverrides(ast.NodeTransformer):
    """``X.call(...)`` of the step or a Detector1 pipeline gains the offline keywords."""

    def visit_Call(self, node):
        self.generic_visit(node)
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr == "call"
                and isinstance(func.value, ast.Name) and func.value.id in _CALLED):
            return node
        if _CALLED[func.value.id] == "step":
            node.keywords.append(ast.keyword(arg=None, value=ast.Name("_OFFLINE_STEP", ast.Load())))
            return node
        user = next((k for k in node.keywords if k.arg == "steps"), None)
        offline = "_OFFLINE_ASTEROID_PIPELINE" if _CALLED[func.value.id] == "asteroid pipeline" \
            else "_OFFLINE_PIPELINE"
        merged = ast.Call(ast.Name("_offline_steps", ast.Load()),
                          [user.value if user else ast.Dict([], []), ast.Name(offline, ast.Load())], [])
        if user:
            user.value = merged
        else:
            node.keywords.append(ast.keyword(arg="steps", value=merged))
        return node


def offline_python(source, refs):
    """A Python block with the offline reference overrides added to its ``.call(...)``.

    A prelude defines ``_OFFLINE_STEP`` (the step's ``override_<reftype>`` keywords),
    the offline ``steps`` of each pipeline, and ``_offline_steps(user_steps, offline)`` (the
    user's ``steps=`` merged over the offline ones).
    """
    tree = _AddOverrides().visit(ast.parse(source))
    ast.fix_missing_locations(tree)
    prelude = (
        f"_OFFLINE_STEP = {refs.step_overrides()!r}\n"
        f"_OFFLINE_PIPELINE = {pipeline_overrides(refs, False)!r}\n"
        f"_OFFLINE_ASTEROID_PIPELINE = {pipeline_overrides(refs)!r}\n"
        "def _offline_steps(user, offline):\n"
        "    merged = {k: dict(v) for k, v in offline.items()}\n"
        "    for step, pars in user.items():\n"
        "        merged.setdefault(step, {}).update(pars)\n"
        "    return merged\n"
    )
    return prelude + ast.unparse(tree) + "\n"


def substitute_names(text, **values):
    """Apply :data:`FILE_SUBSTITUTIONS` (formatted with ``values``) to a block's text."""
    for name, replacement in FILE_SUBSTITUTIONS.items():
        if name in text:
            text = text.replace(name, replacement.format(**values))
    return text


if __name__ == "__main__":
    # The lists the documentation test works from: python -m tests.doc_blocks
    blocks = all_blocks()
    print("Run, in document order:")
    for b in blocks:
        if b.kind != "text" and b.not_run is None:
            what = f"writes {b.file}" if b.kind == "file" else b.first_line
            print(f"  {b.where:<34} {b.kind:<7} {what}")
    print("Not run:")
    for b in blocks:
        if b.not_run is not None:
            print(f"  {b.where:<34} {b.first_line}  -- {b.not_run}")
    print("Text (layouts and output, no commands):")
    for b in blocks:
        if b.kind == "text":
            print(f"  {b.where:<34} {b.first_line}")
