"""Auto-graded deep-learning course package (lessons 4 and 5) built on nbgrader.

Pipeline stages, one module each: ``collect`` -> ``execute`` -> ``capture`` -> ``check`` ->
``record`` -> ``feedback`` -> ``export``. ``core.grade`` is the stateless core
``grade(submission, assignment) -> StudentResult``; ``batch`` runs it over a class.
"""

__version__ = "0.1.0"
