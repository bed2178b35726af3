"""Unit tests: no database (pytest-django refuses any access), no subprocess; seconds in all."""
