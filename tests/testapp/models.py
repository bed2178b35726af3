from django.db import models


class SideEffect(models.Model):
    """One row per job body execution, so tests count runs rather than trusting statuses."""

    job_id = models.BigIntegerField()
    label = models.CharField(max_length=100, default="")
    attempt = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)


class Span(models.Model):
    """When a job body started and ended, and the key it ran under: flow-control tests check
    overlaps and windows from these, not from what the workers report."""

    job_id = models.BigIntegerField()
    key = models.CharField(max_length=100, default="")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True)
