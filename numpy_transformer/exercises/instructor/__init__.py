"""Instructor-only tools (left out of the student copy): building the grader's fixtures."""
