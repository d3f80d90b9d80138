"""The student distribution of the deep-learning course (lessons 4 and 5).

What a student's notebook imports: the red wine data loader (``data``), the gradient-descent
playground (``playground``), the capture helpers the hidden test cells call while grading
(``capture``, ``keras_capture``) and the self-checks (``selfcheck``, built on the public checks
of ``rules`` and the message catalogue). It holds no checker, no solution and no hidden
expected answer: grading happens in the grader distribution, outside the student's kernel.
"""
