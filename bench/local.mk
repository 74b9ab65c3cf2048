# bench/local.mk
EXTRA_DIST += bench/e2e.py
