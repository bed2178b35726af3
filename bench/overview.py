"""Section J's page loads, in a process of their own with the admin installed (bench.admin_settings):
``python -m bench.overview LOADS`` prints, as JSON, each view's load times in ms.

A logged-in superuser loads the overview through Django's test client (the whole request:
middleware, view, statements, templates, the charts' SVG), after a warm-up load, for each period
of the charts' selector.
"""

from __future__ import annotations

import json
import sys
import time

WARMUP = 2


def main(loads: int) -> dict[str, object]:
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
    for view in ("hour", "day", "week"):
        times = []
        for n in range(WARMUP + loads):
            started = time.perf_counter()
            response = client.get("/admin/django_jobs/queueoverview/", {"range": view})
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"the overview answered {response.status_code}")
            if n >= WARMUP:
                times.append(elapsed)
        page = response.content.decode()
        found[view] = {
            "times_ms": times,
            "charts": page.count('class="dj-chart-svg"'),
            "empty_charts": page.count('data-empty="true"'),
            "bytes": len(response.content),
        }
    return found


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
