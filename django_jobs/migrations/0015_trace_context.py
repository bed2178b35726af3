from django.db import migrations, models

# The trace context an enqueue() stores for OpenTelemetry (django_jobs/tracing.py). Nullable with
# no default: adding them rewrites nothing, and processes still running the previous code keep
# inserting jobs (their rows get NULL: no trace, as before).


class Migration(migrations.Migration):

    dependencies = [
        ('django_jobs', '0014_charts'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='traceparent',
            field=models.CharField(blank=True, editable=False, max_length=55, null=True),
        ),
        migrations.AddField(
            model_name='job',
            name='tracestate',
            field=models.TextField(blank=True, editable=False, null=True),
        ),
    ]
