"""The subcommands of ``manage.py jobs``, one module each.

Each module has ``HELP`` (one line), ``add_arguments(parser)`` and ``handle(command, **options)``,
which writes to ``command.stdout`` and raises ``CommandError(message, returncode=N)`` for a
failure. ``django_jobs/management/commands/jobs.py`` lists them in ``SUBCOMMANDS``.
"""
