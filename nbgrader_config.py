# nbgrader reads this file; the course's settings live in course_config.py (one place only).
# What is here only makes nbgrader's own commands agree with the course package
# (docs/nbgrader.md); nothing here is a setting to change per course.
import os

load_subconfig("course_config.py")  # noqa: F821
c = get_config()  # noqa: F821

_course_root = os.path.dirname(os.path.abspath(__file__))  # noqa: F821 (traitlets sets it)

# The exchange of `nbgrader release_assignment / fetch_assignment / submit / collect / list`:
# a folder of the course for a class on one machine (course_config.py may name a shared one).
# nbgrader wants it to exist and to be writable by everyone (as release_assignment makes it).
if "root" not in c.Exchange:
    c.Exchange.root = os.path.join(_course_root, "exchange")
if not os.path.isdir(c.Exchange.root):
    try:
        os.makedirs(c.Exchange.root)
        os.chmod(c.Exchange.root, 0o777)
    except OSError:
        pass  # a read-only checkout: nbgrader says what is wrong when the exchange is used

# One gradebook: the one c.Course.db_url names, if it names one (formgrader reads it too).
if c.Course.get("db_url") and "db_url" not in c.CourseDirectory:
    c.CourseDirectory.db_url = c.Course.db_url

# nbgrader autograde (and formgrader's Autograde button) grades with the course's pipeline and
# never deletes stored artifacts; generate_feedback writes the course's pages (no hidden test);
# validate says that it runs only the visible checks (autograder/nbgrader_plugins.py).
c.Autograde.exporter_class = "autograder.nbgrader_plugins.CourseAutograde"
c.GenerateFeedback.exporter_class = "autograder.nbgrader_plugins.CourseFeedback"
try:
    from autograder.nbgrader_plugins import install
except ImportError:  # nbgrader without the course package: its own commands, unchanged
    pass
else:
    install(c)
