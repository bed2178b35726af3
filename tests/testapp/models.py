from django.db import models


class SideEffect(models.Model):
    """One row per job body execution, so tests count runs rather than trusting statuses."""

    job_id = models.BigIntegerField()
    label = models.CharField(max_length=100, default="")
    attempt = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
