"""A paginator for the job lists that never counts millions of rows."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet

from ..db import stats as db_stats


class EstimatedCountPaginator(Paginator):
    """Counts exactly up to ``exact_up_to`` rows and takes the planner's estimate beyond.

    ``COUNT(*)`` over millions of jobs takes seconds on every page load. Here the planner's
    estimate (``EXPLAIN``, which reads no rows) decides first: above the limit it is the
    count; below it a count capped at the limit (``LIMIT`` in a subquery) gives the exact figure
    at the cost of at most that many index entries. ``estimated`` tells the template to say
    "about".
    """

    exact_up_to = 1000
    estimated = False

    @property
    def count_label(self) -> str:
        """The count for people: "about 1,200,000" when estimated."""
        return f"about {self.count:,}" if self.estimated else f"{self.count:,}"

    @cached_property
    def count(self) -> int:
        queryset = self.object_list.order_by()  # type: ignore[attr-defined]
        estimate = self._planner_rows(queryset)
        if estimate is not None and estimate > self.exact_up_to:
            self.estimated = True
            return estimate
        capped = queryset.values("pk")[: self.exact_up_to + 1].count()
        if capped <= self.exact_up_to:
            return capped
        self.estimated = True
        return max(capped, estimate or 0)

    @staticmethod
    def _planner_rows(queryset: QuerySet[Any]) -> int | None:
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        try:
            sql, params = queryset.values("pk").query.sql_with_params()
        except EmptyResultSet:
            # A lookup no row can match, e.g. ?priority=99999999999999999999 (beyond the
            # column's range): Django builds no SQL for it, and the list is empty.
            return 0
        return db_stats.planner_rows(queryset.db, sql, params)

