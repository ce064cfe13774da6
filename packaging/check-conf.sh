#!/bin/sh
# check-conf.sh (make check): conf/eventfold.conf and eventfold.conf(5) document
# exactly the keys the programs know, with the built-in defaults, and the file
# is accepted by the programs with every key uncommented.
#
# Sources of truth: the key table of src/util/config.c (KEY("name", ...)) and the
# defaults listed in the header comment of src/util/config.h. The file's
# commented-out lines "#key = value" must name the same keys with the same
# values; eventfold.conf(5) must have an entry ".BI key" for each key. Finally
# eventfold-tailer --once reads a copy with every line uncommented (the data
# directory pointed at a temporary one) and must exit 0.
set -eu

src=${EF_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${EF_BUILDDIR:-.}
tailer="$build/eventfold-tailer"
[ -x "$tailer" ] || { echo "SKIP: $tailer not built"; exit 77; }

T=$(mktemp -d /tmp/ef-check-conf.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

conf="$src/conf/eventfold.conf"
man5="$src/doc/man/eventfold.conf.5"
sed -n 's/^ *KEY("\([a-z_]*\)".*/\1/p' "$src/src/util/config.c" | sort > "$T/keys.code"
sed -n 's/^#\([a-z_]*\) =.*/\1/p' "$conf" | sort > "$T/keys.conf"
sed -n 's/^\.BI \([a-z_]*\) .*/\1/p' "$man5" | sort > "$T/keys.man"
[ -s "$T/keys.code" ] || bad "no KEY(...) rows found in src/util/config.c"
cmp -s "$T/keys.code" "$T/keys.conf" || { bad "keys of config.c (<) and conf/eventfold.conf (>) differ:"; diff "$T/keys.code" "$T/keys.conf" || :; }
cmp -s "$T/keys.code" "$T/keys.man" || { bad "keys of config.c (<) and eventfold.conf.5 (>) differ:"; diff "$T/keys.code" "$T/keys.man" || :; }

# Defaults: "key value" from config.h's comment ("(fd 0)" for listen means unset),
# against "#key = value" in the file.
sed -n '/Keys (default):/,/\*\//s/^ \*   \([a-z_]*\) *\([^ ]*\).*/\1 \2/p' "$src/src/util/config.h" |
    sed 's/^listen (fd$/listen /' | sort > "$T/defaults.header"
sed -n 's/^#\([a-z_]*\) = *\(.*\)$/\1 \2/p; s/^#\([a-z_]*\) =$/\1 /p' "$conf" | sort > "$T/defaults.conf"
cmp -s "$T/defaults.header" "$T/defaults.conf" || { bad "defaults of config.h (<) and conf/eventfold.conf (>) differ:"; diff "$T/defaults.header" "$T/defaults.conf" || :; }

# Every documented line, uncommented, is accepted (listen stays unset: an empty
# value means "the inherited socket", and the tailer does not listen anyway).
mkdir "$T/data"
sed -e 's/^#\([a-z_]* = .\)/\1/' -e "s|^data = .*|data = $T/data|" "$conf" > "$T/all.conf"
[ "$(grep -c '^[a-z_]* = ' "$T/all.conf")" -ge "$(($(wc -l < "$T/keys.code") - 1))" ] || bad "uncommenting found too few keys"
if ! "$tailer" --config "$T/all.conf" --once >"$T/tailer.log" 2>&1; then
    bad "eventfold-tailer rejects conf/eventfold.conf with every key set:"
    cat "$T/tailer.log"
fi

[ $fail -eq 0 ] && echo "PASS: $(wc -l < "$T/keys.code") keys documented with their defaults and accepted"
exit $fail
