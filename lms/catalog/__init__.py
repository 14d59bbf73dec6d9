"""Courses, modules, contents and enrolment, with who may do what."""
