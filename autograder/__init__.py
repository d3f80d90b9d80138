"""Auto-graded deep-learning course package (lessons 4 and 5) built on nbgrader.

Pipeline stages, one module each: ``collect`` -> ``execute`` -> ``capture`` -> ``check`` ->
``record`` -> ``feedback`` -> ``export``. ``core.grade`` is the stateless core
``grade(submission, assignment) -> StudentResult``; ``batch`` runs it over a class.
"""

import sys

__version__ = "0.1.0"

# jsonschema (under nbformat) imports rfc3987_syntax when it is installed (an extra that
# jupyter-events pulls in) to check the "iri" format: it builds a grammar at import, about
# 1.8 s of every grader process (each CLI command, each worker). No schema the grader uses
# has that format, and without the module jsonschema only skips that check.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
