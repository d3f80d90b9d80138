# nbgrader reads this file; the course's settings live in course_config.py (one place only).
load_subconfig("course_config.py")  # noqa: F821
