"""Packaging tests: build, check and install the package (marked ``slow``; stage ``packaging``)."""
