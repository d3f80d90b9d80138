"""Hidden pytest checkers, one module per assignment (``<assignment id>.py``).

Each ``test_*`` function is one check of one graded cell, marked with
``@pytest.mark.grade_cell("<grade id>", points=P)``. A check passes, or raises ``Fail`` with a
message id from the catalogue, or ``NotAttempted``. The fixtures (``conftest.py``) give the
captured answers and artifacts of the submission being graded. Checkers run in the grader's
process, on plain data, never inside the student's kernel.
"""
