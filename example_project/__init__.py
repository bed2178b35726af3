"""The django-jobs demo project: ``python3 example_project/demo.py`` runs it."""
