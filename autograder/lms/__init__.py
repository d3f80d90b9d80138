"""LMS integration: submissions in from Canvas and Moodle, grades and feedback out.

=====================  =====================================================================
``lms.canvas``         "Download submissions" zip in; gradebook import CSV out
``lms.moodle``         "Download all submissions" zip in; the grading worksheet filled in
``lms.gradescope``     the autograder bundle (``setup.sh``, ``run_autograder``) and its runner
``lms.lti``            LTI 1.3 Assignment and Grade Services score passback
``lms.roster``         who is who: LMS ids <-> the course's student ids
=====================  =====================================================================

Settings live in ``course_config.py`` under ``c.Course.lms``, typed by
``autograder.config.LmsSettings`` (docs/settings.md) and validated when the course is loaded;
every section is optional until the feature that needs it is used. The modules read them
through ``lms_config(course)``. Secrets (the LTI private key) are never read from there: only
a path to a key file, or the environment.

Every step reports what it did and what it could not do; nothing is dropped silently.

This face holds no code. Shared parts: ``lms.common`` (errors, settings as the modules read
them, the words of comments), ``lms.collect`` (downloads in: the report, the archive, the
layout into ``submitted/``); the grades every exporter sends: ``autograder.grades``.
"""
