from django.db import migrations, models

# Worker.may_start: the jobs a worker may have sent to a child, declared before it sends them, so
# rescue can give back the ones that provably never started. Nullable with no database default:
# a worker still running the previous code writes no declaration, which rescue reads as "any of
# its jobs may have started" (what it assumed before).


class Migration(migrations.Migration):

    dependencies = [
        ('django_jobs', '0011_retry_restarts_backoff'),
    ]

    operations = [
        migrations.AddField(
            model_name='worker',
            name='may_start',
            field=models.JSONField(blank=True, default=None, null=True),
        ),
    ]
