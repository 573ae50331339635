"""scarlab: an interactive lab for machine unlearning of image classifiers, built around SCAR (ECCV 2024)."""
import sys as _sys

__version__ = "0.1.0"

# jsonschema (under nbformat, which papermill, jupytext and plotly's notebook renderer import) builds a grammar for
# its optional IRI format check when the rfc3987-syntax package is installed: 0.85 s of every stage kernel's and
# CLI process's start (`python -X importtime`). Nothing scarlab runs checks IRI formats, so in a process that imports
# scarlab before jsonschema that optional package reads as absent: jsonschema then skips the "iri" format, exactly as
# where rfc3987-syntax is not installed.
if "jsonschema" not in _sys.modules:
    _sys.modules.setdefault("rfc3987_syntax", None)
