from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("django_jobs", "0006_dead_letter_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="worker",
            name="listed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="worker",
            name="pid_namespace",
            field=models.CharField(blank=True, db_default="", default="", max_length=100),
        ),
    ]
