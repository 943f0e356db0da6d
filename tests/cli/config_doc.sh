#!/bin/sh
# docs/config.md is generated from the config key table (src/train/config.c): the
# committed file must be exactly what td-config-doc prints now.
#   config_doc.sh TD_CONFIG_DOC SOURCE_DIR WORKDIR
set -u
gen=$1
src=$2
work=$3
rm -rf "$work" && mkdir -p "$work"
"$gen" > "$work/config.md" || { echo "FAIL: $gen exited non-zero" >&2; exit 1; }
if ! diff -u "$src/docs/config.md" "$work/config.md"; then
    echo "FAIL: docs/config.md differs from the config key table in src/train/config.c (diff above);" \
         "regenerate it with 'make docs' (or: build/td-config-doc > docs/config.md) and commit it" >&2
    exit 1
fi
echo "config_doc: docs/config.md matches the key table"
