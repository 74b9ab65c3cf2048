# t/crash.mk - crash test (issue 3, invariant 2): kill -9 of the engine and of
# the master at random moments while mail flows; no acknowledged message lost.
TESTS += t/crash_kill9.py
EXTRA_DIST += t/crash_kill9.py
