"""Admin page loads, in a process of their own with the admin installed (bench.admin_settings):
``python -m bench.overview LOADS [PAGE ...] [--budget SECONDS]`` prints, as JSON, each page's load
times in ms.

A logged-in superuser loads each page through Django's test client (the whole request:
middleware, view, statements, templates, the charts' SVG), after warm-up loads. Without PAGEs
it loads the overview for each period of the charts' selector (section J); section L names the
overview and the job list's views (PAGES). With ``--budget``, a page stops after that many
seconds of loads (at least one measured): a page that takes seconds is still reported, without
taking minutes.
"""

from __future__ import annotations

import argparse
import json
import time

WARMUP = 2
OVERVIEW = "/admin/django_jobs/queueoverview/"
JOBS = "/admin/django_jobs/job/"
#: Every page this loads: its URL and query. The job list's are its default view, a status filter
#: (the list filter's own parameter), a search whose term every seeded row matches (the job's
#: name), and one that no row matches, which must read every row to say so.
PAGES: dict[str, tuple[str, dict[str, str]]] = {
    "hour": (OVERVIEW, {"range": "hour"}),
    "day": (OVERVIEW, {"range": "day"}),
    "week": (OVERVIEW, {"range": "week"}),
    "overview": (OVERVIEW, {}),
    "jobs": (JOBS, {}),
    "jobs_succeeded": (JOBS, {"status__exact": "succeeded"}),
    "jobs_search": (JOBS, {"q": "bench.noop"}),
    "jobs_search_miss": (JOBS, {"q": "no job has this text"}),
}
CHARTS = ("hour", "day", "week")


def main(loads: int, pages: list[str], budget: float | None = None) -> dict[str, object]:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0, interactive=False)
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench"
    )
    client = Client()
    client.force_login(user)
    found: dict[str, object] = {}
    for page in pages:
        url, query = PAGES[page]
        times: list[float] = []
        began = time.perf_counter()
        n = 0
        while len(times) < loads:
            started = time.perf_counter()
            response = client.get(url, query)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{page} ({url}) answered {response.status_code}")
            if n >= WARMUP:
                times.append(elapsed)
            n += 1
            if budget is not None and times and time.perf_counter() - began > budget:
                break
        content = response.content.decode()
        found[page] = {
            "times_ms": times,
            "charts": content.count('class="dj-chart-svg"'),
            "empty_charts": content.count('data-empty="true"'),
            "bytes": len(response.content),
            "rows": content.count('name="_selected_action"'),
        }
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.overview")
    parser.add_argument("loads", type=int)
    parser.add_argument("pages", nargs="*", metavar="PAGE", help=f"of {', '.join(PAGES)}")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS")
    args = parser.parse_args()
    if set(args.pages) - set(PAGES):
        parser.error(f"unknown page(s): {', '.join(sorted(set(args.pages) - set(PAGES)))}")
    print(json.dumps(main(args.loads, args.pages or list(CHARTS), args.budget)))
