"""Public checks, one module per assignment: one definition serves the hidden checker and the
student's self-check. Only checks whose expected value the lesson itself states live here."""
