"""Every SQL statement django-jobs runs, named, one module per concern."""
