#!/bin/sh
# render-html.sh REDOCLY SRCDIR OUT (make doc, and tests/doc/test_api_html.py): renders
# SRCDIR/doc/openapi.yaml into OUT, one static HTML page with the Redoc scripts inlined
# (--inlineBundle: the page loads nothing from the network, so it works where it is served
# from, e.g. nginx's `location = /api/docs`). Redocly's telemetry and update check are off.
set -eu
redocly=$1
src=$2
out=$3
[ -x "$redocly" ] || { echo "render-html.sh: no $redocly (run 'make node-tools')" >&2; exit 77; }
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
    "$redocly" build-docs --inlineBundle --config "$src/redocly.yaml" \
    --title "eventfold HTTP API" -o "$out" "$src/doc/openapi.yaml"
