"""The course's one configuration file.

It is a traitlets config file, so nbgrader reads it (``nbgrader_config.py`` loads it) and the
``autograder`` package reads it too (``autograder.config.load_course``). Instructors change the
course here and nowhere else.

* ``c.CourseDirectory``, ``c.Execute``, ``c.ClearSolutions`` ... are nbgrader's own settings.
* ``c.Course`` holds the course package's settings (language, data, thresholds, time limits).

Every ``c.Course`` key, its type and its default is listed in ``docs/settings.md`` (the schema is
``autograder/config.py``). The course is validated when it is loaded: an unknown or misspelt
key, at any level, or a value of the wrong type, stops with an error naming the nearest key.
"""

import os

c = get_config()  # noqa: F821  (injected by traitlets when this file is loaded)

# --- nbgrader -------------------------------------------------------------------------------
# nbgrader_config.py loads this section and adds what only nbgrader needs: the exchange
# (<course>/exchange, for a class on one machine; set c.Exchange.root here for a shared one),
# the gradebook of c.Course.db_url, and the course's autograde, feedback and validate steps
# (docs/nbgrader.md).
c.CourseDirectory.course_id = "dl-lecciones-4-5"
# The course directory: this file's folder, as an absolute path, wherever a command runs.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))  # noqa: F821 (traitlets)
# The stub students see in place of a solution (Spanish, the course's language).
c.ClearSolutions.code_stub = {"python": "# TU CÓDIGO AQUÍ\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "ESCRIBE TU RESPUESTA AQUÍ"
# Per-cell timeout (seconds) used both by nbgrader's own Execute and by our executor.
c.Execute.timeout = 120
c.Execute.kernel_name = "python3"

# --- the course package ---------------------------------------------------------------------
# Language of student messages and feedback: "es" (the course's language) or "en".
c.Course.language = "es"
# Where the red wine data is cached; COURSE_DATA_HOME overrides it. "" = the user's cache.
c.Course.data_home = ""
# Assignments graded by the package: id -> notebook file and time limits (seconds): "timeout"
# for the whole notebook, optional "cell_timeout" for one cell (default: c.Execute.timeout).
# Points are read from source/. Lesson 5 trains its graded model in one cell (about 46 s on
# 2 idle cores, twice that on a loaded grader), so its cell limit leaves room.
# "mode": "graded" (the default) or "practice": `autograder release` then writes
# release/<assignment>/practice.json, and the notebook's self-checks also say whether the hidden
# answers (step counts, letters, labels, the diagnosis) are right. Its digests are guessed in a
# few tries: use practice mode only for ungraded practice (docs/student.md). For example:
#     "lesson4_learning_rate": {"notebook": "learning_rate.ipynb", "timeout": 300,
#                               "mode": "practice"},
c.Course.assignments = {
    "lesson4_learning_rate": {"notebook": "learning_rate.ipynb", "timeout": 300},
    "lesson4_early_stopping": {"notebook": "early_stopping.ipynb", "timeout": 600},
    "lesson5_dropout_batchnorm": {
        "notebook": "dropout_batchnorm.ipynb",
        "timeout": 600,
        "cell_timeout": 300,
    },
}
# Wall-clock limit for a whole notebook (seconds) when the assignment gives none.
c.Course.notebook_timeout = 600
# Numeric tolerances and thresholds used by the checkers, per assignment. Every name and its
# default is declared once, in autograder/config.py (THRESHOLDS); docs/settings.md lists them.
c.Course.thresholds = {
    "lesson4_learning_rate": {
        # relative tolerance for real-valued answers such as the step size
        "answer_rtol": 1e-6,
    },
    "lesson4_early_stopping": {
        # docs/calibration.md: validation MAE of the trained model, re-computed by the checker
        # on the course's validation split, must lie in [min, max]
        "es_val_mae_max": 0.0875,
        "es_val_mae_min": 0.06,
        # a history matches the model when the re-computed val_loss is within atol + rtol*|v|
        # (measured gap: below 2e-8 on 20 seeds)
        "es_history_atol": 1e-6,
        "es_history_rtol": 1e-5,
        # scaled split values are compared with this absolute tolerance (float32 round-off)
        "es_scale_atol": 1e-5,
    },
    "lesson5_dropout_batchnorm": {
        # docs/calibration_lesson5.md: validation MAE of the trained model, re-computed by the
        # checker in inference mode on the course's validation split, must lie in [min, max]
        "db_val_mae_max": 0.145,
        "db_val_mae_min": 0.05,
        # the last val_loss of history matches the re-computed loss within atol + rtol*|v|
        # (measured gap: below 2.1e-8 on 24 seeds)
        "db_history_atol": 1e-6,
        "db_history_rtol": 1e-5,
    },
}
# Parallel grading: worker processes (0 = one per core) and threads per student kernel. The
# kernel threads are fixed whatever the number of workers, so a notebook trains identically
# serially, in parallel or on Dask (same scores); workers x kernel_threads <= cores.
c.Course.workers = 0
c.Course.kernel_threads = 1
# Submissions that would execute the same notebook (the given code unchanged, the same
# answers) are executed once and each student gets that grade under their own name; only a
# run that completed is shared. False executes every submission.
c.Course.deduplicate = True
# The next notebook's kernel is started (a fresh sandbox that runs only the setup cell's
# imports) while one notebook runs: "auto" when the workers leave a core free for it (one
# worker on two cores), "always" or "never". Off by default while a fork bomb graded beside a
# prestarted kernel is not stopped with its own reason (docs/scale.md).
c.Course.prestart_kernels = "never"
# Sandbox around every student kernel (bubblewrap; see docs/sandbox.md). Without bubblewrap,
# grading refuses to run unless allow_unsandboxed is True (or --allow-unsandboxed is given).
c.Course.sandbox = {
    "allow_unsandboxed": False,
    "memory_mb": 3072,  # resident memory of the kernel and all its children
    "address_space_mb": 8192,  # virtual memory per process (TensorFlow maps ~3 GB)
    "processes": 256,  # processes + threads of the kernel's user
    "file_size_mb": 64,  # largest file a notebook may write
    "disk_mb": 256,  # everything a notebook writes in its work folder
    "max_files": 2000,
    "tmp_mb": 64,  # private /tmp and /dev/shm
    "cpu_seconds": None,  # CPU s per process; None: 2 x the longest notebook limit + 30
    # The other keys, at their defaults (docs/sandbox.md says what each guarantees):
    # "enabled": True,  # False: never sandbox (needs allow_unsandboxed too)
    # "memory_accounting": "auto",  # "cgroup" | "seccomp": how memory_mb is enforced
    # "seccomp_with_cgroup": True,  # the seccomp filter even when a cgroup counts memory
    # "open_files": 1024,
    # "uid": None,  # the kernel's uid when grading as root; None: one per grader process
    # "max_message_mb": 16,  # largest message the grader accepts from a kernel
    # "poll_seconds": 0.2,  # the watchdog's period (memory and disk)
    # "extra_ro_paths": [],  # more read-only paths the kernel may see
    # "bwrap": "bwrap",  # the bubblewrap program
}
# Gradebook: nbgrader's SQLite file in the course directory unless a db_url is given.
c.Course.db_url = ""
# LMS integration (docs/lms.md; every key, its type and default in docs/settings.md). Not set
# by default: uncomment what your LMS needs. Every key of every section, with an example value:
# c.Course.lms = {
#     # roster CSV(s) mapping LMS identities to student ids (relative: to this folder)
#     "roster": "roster.csv",
#     "canvas": {
#         # the number in each assignment's address (/courses/N/assignments/<id>); or a dict
#         "assignments": {
#             "lesson4_learning_rate": {"id": 123456, "name": "Lección 4.1", "points": 10},
#             "lesson4_early_stopping": 123457,
#         },
#     },
#     "moodle": {
#         # the grading worksheet downloaded from Moodle (or --worksheet), per assignment
#         "worksheets": {"lesson4_learning_rate": "moodle/lesson4_learning_rate.csv"},
#         "feedback": True,  # fill the worksheet's feedback column
#         # the worksheet's column titles when Moodle speaks another language
#         "columns": {"grade": "Calificación", "feedback": "Comentarios de retroalimentación"},
#     },
#     "lti": {
#         "client_id": "10000000000001",
#         "token_url": "https://canvas.instructure.com/login/oauth2/token",
#         "issuer": "https://canvas.instructure.com",
#         "audience": "",  # "": the token URL
#         "key_id": "autograder-1",
#         "key_file": "lti/private_key.pem",  # autograder lti-key lti/private_key.pem
#         "line_items": {"lesson4_learning_rate": "https://canvas.example.edu/api/lti/courses/1/line_items/7"},
#         "user_ids": "lti/user_ids.csv",  # student_id,lti_user_id (autograder lti-roster)
#         "lineitems_url": "https://canvas.example.edu/api/lti/courses/1/line_items",
#         "labels": {"lesson4_learning_rate": "Lección 4.1: tasa de aprendizaje"},
#         "tag": "autograder",
#         "create_line_items": True,
#         "memberships_url": "https://canvas.example.edu/api/lti/courses/1/names_and_roles",
#         "roster_match": "email",  # or "email_local", "lis_person_sourcedid"
#         "max_response_mb": 16.0,
#         "scope": "https://purl.imsglobal.org/spec/lti-ags/scope/score",
#         "timeout": 30.0,
#         "max_attempts": 4,
#         "backoff": 1.0,
#         "assertion_lifetime": 300,
#         "comment": True,
#         "activity_progress": "Completed",
#         "grading_progress": "FullyGraded",
#     },
#     "gradescope": {
#         "visibility": "visible",
#         "stdout_visibility": "hidden",
#         "test_visibility": {"lesson4_learning_rate": {"test_curve_labels": "after_published"}},
#         "time_limit": {"*": 600.0, "lesson5_dropout_batchnorm": 1200.0},
#         "margin": 60.0,
#         "run_as": "student",
#         "memory_mb": {"*": 768, "lesson4_early_stopping": 1280, "lesson5_dropout_batchnorm": 1536},
#         "cpus": 0.5,
#     },
# }
