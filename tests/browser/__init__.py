"""Browser tests: headless Chromium against the live server (marked ``browser``)."""
