"""What a student's notebook imports: the data loader, the playground, visible sanity checks.

This subpackage is deliberately light (no checker code, no expected answers) because it runs
inside the student's kernel. ``capture`` is called by the hidden test cells during grading.
"""
