"""A job added "in the next release": installed in the test settings, left out of a worker's
when DJANGO_JOBS_TEST_OLD_CODE is set, so one test can overlap old and new workers."""
