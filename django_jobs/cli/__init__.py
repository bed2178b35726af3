"""``manage.py jobs``: the operator's verbs from a shell, one module per subcommand.

Each subcommand module has ``HELP`` (one line), ``add_arguments(parser)`` and
``handle(command, **options)``, which writes to ``command.stdout`` and raises ``CommandError``
with one of the exit codes below; management/commands/jobs.py dispatches to them. The CLI calls
the same queryset verbs, statistics and diagnosis as the admin, and checks no Django permission:
whoever can run ``manage.py`` can already read and write the database (docs/reference/commands.md).
"""

from __future__ import annotations

#: A subcommand finished what it was asked (a dry run, or a selection that matched nothing, too).
OK = 0
#: Nothing changed because it wasn't confirmed: the answer wasn't yes, or there was no terminal to
#: ask on and no ``--yes``.
NOT_CONFIRMED = 1
#: Bad input: an option's value, an id no job has, a name or queue that matches nothing. argparse's
#: own usage errors exit 2 as well.
BAD_INPUT = 2
