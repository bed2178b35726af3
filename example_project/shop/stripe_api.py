"""The Stripe client the shop's jobs use, built from settings at call time."""

from __future__ import annotations

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: Retries the SDK makes itself, within one attempt, for connection errors, 409 and 5xx
#: (after 0.5 s, 1 s, …). What outlasts them fails the attempt and the job's retry policy
#: takes over, with minutes between attempts instead of seconds.
DEFAULT_NETWORK_RETRIES = 2


class StripeNotConfigured(ImproperlyConfigured):
    """STRIPE_API_KEY is empty, so nothing can be fetched until someone sets it."""


def stripe_client() -> stripe.StripeClient:
    """Return a StripeClient for ``STRIPE_API_KEY`` (and ``STRIPE_API_BASE``, if set)."""
    api_key = getattr(settings, "STRIPE_API_KEY", "")
    if not api_key:
        raise StripeNotConfigured(
            "STRIPE_API_KEY is empty, so the Stripe sync can't run. Set it in the worker's "
            "environment to a test-mode secret key (sk_test_…, from "
            "https://dashboard.stripe.com/test/apikeys), or run `python3 example_project/demo.py`, "
            "which points the worker at a local fake Stripe. Retrying won't help until it is set."
        )
    options: dict[str, object] = {}
    base = getattr(settings, "STRIPE_API_BASE", "")
    if base:
        options["base_addresses"] = {"api": base}
    retries = getattr(settings, "STRIPE_MAX_NETWORK_RETRIES", DEFAULT_NETWORK_RETRIES)
    return stripe.StripeClient(api_key, max_network_retries=retries, **options)
