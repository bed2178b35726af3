"""Background and cron jobs for Django on the database you already have."""

from __future__ import annotations

__version__ = "0.1.0.dev0"
