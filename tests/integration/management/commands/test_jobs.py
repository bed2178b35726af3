"""``manage.py jobs``, the dispatcher: a subcommand is required, Django's own options work after it."""

from __future__ import annotations

import pytest

from django_jobs.management.commands.jobs import SUBCOMMANDS
from tests.support.cli import jobs

pytestmark = pytest.mark.django_db


def test_jobs__every_subcommand_module_has_the_shared_interface() -> None:
    for name, module in SUBCOMMANDS.items():
        assert module.HELP and "\n" not in module.HELP, name
        assert callable(module.add_arguments) and callable(module.handle), name


def test_jobs__django_options_work_after_the_subcommand() -> None:
    ran = jobs("list", "--verbosity", "0", "--skip-checks", "--json")

    assert (ran.code, ran.out.strip()) == (0, "[]")


def test_jobs__without_a_subcommand_says_which_there_are() -> None:
    ran = jobs()

    assert ran.code != 0
    assert "the following arguments are required: SUBCOMMAND" in ran.err
