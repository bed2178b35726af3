"""The demo shop: orders synced nightly from Stripe, and their confirmation emails.

Kept free of Django imports so ``demo.py`` can import ``fake_stripe`` with the standard
library alone, before the virtualenv exists.
"""
