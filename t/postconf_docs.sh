#!/bin/sh
# postconf_docs.sh - docs/parameters.md is what the parameter table says.
# When this fails, run `make docs-parameters` and commit the result.
B=${SLUICE_BUILDDIR:-.}
S=${SLUICE_SRCDIR:-.}
echo "1..1"
if "$B/cli/postconf" --doc-markdown | diff -u "$S/docs/parameters.md" - >"${TMPDIR:-/tmp}/postconf_docs.$$" 2>&1; then
    echo "ok 1 - docs/parameters.md is up to date"
else
    echo "not ok 1 - docs/parameters.md is stale: run make docs-parameters"
    head -40 "${TMPDIR:-/tmp}/postconf_docs.$$" | sed 's/^/# /'
fi
rm -f "${TMPDIR:-/tmp}/postconf_docs.$$"
