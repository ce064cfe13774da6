#!/bin/sh
# build-packages.sh: builds the Debian and RPM packages of eventfold.
#
#   packaging/build-packages.sh [--deb-only] [TARBALL]
#
# From TARBALL (a `make dist` tarball, as `make packages` passes it), or else
# from a copy of this source tree (autoreconf, configure, make dist in a
# temporary directory: the tree itself is not touched). Then:
#   - Debian: unpacks the tarball, puts packaging/debian at its top, runs
#     `dpkg-buildpackage -us -uc -b` (which runs `make check` unless
#     DEB_BUILD_OPTIONS has nocheck) and `lintian --fail-on error`;
#   - RPM: `rpmbuild -bb` with packaging/rpm/eventfold.spec from the tarball.
#     Debian's rpm has no database of the BuildRequires (they are Fedora
#     package names), so rpmbuild runs with --nodeps: the Debian build
#     dependencies above stand in for them. No debuginfo package is made
#     (Debian's rpm lacks find-debuginfo).
# Packages, lintian output and build logs go to $EF_OUTDIR (default
# packaging/out/ in the source tree). EF_PKG_NOCHECK=1 skips `make check` in
# both builds. Exit status 0 when every package was built and lintian found no
# error.
set -eu

usage() { echo "usage: $0 [--deb-only] [TARBALL]" >&2; exit 2; }

deb_only=no
tarball=
while [ $# -gt 0 ]; do
    case "$1" in
        --deb-only) deb_only=yes ;;
        -h|--help) usage ;;
        -*) usage ;;
        *) [ -z "$tarball" ] || usage; tarball=$1 ;;
    esac
    shift
done

srcdir=$(cd "$(dirname "$0")/.." && pwd)
outdir=${EF_OUTDIR:-$srcdir/packaging/out}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

for tool in dpkg-buildpackage lintian; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$0: $tool not found (Debian: apt-get install dpkg-dev debhelper lintian)" >&2; exit 1; }
done
if [ "$deb_only" = no ] && ! command -v rpmbuild >/dev/null 2>&1; then
    echo "$0: rpmbuild not found (Debian: apt-get install rpm)" >&2; exit 1
fi

work=$(mktemp -d /tmp/eventfold-pkg.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Runs "$@" with its output in $outdir/$log; on failure shows the end of it.
logged() {
    log=$1; shift
    echo "build-packages: $* (log: $outdir/$log)"
    if ! "$@" >"$outdir/$log" 2>&1; then
        tail -n 60 "$outdir/$log" >&2
        echo "build-packages: FAILED: $*" >&2
        exit 1
    fi
}

if [ -z "$tarball" ]; then
    # A copy of the tree as it is (committed or not), without VCS data or
    # earlier package output, turned into a dist tarball out of tree.
    mkdir "$work/tree"
    (cd "$srcdir" && tar -cf - --exclude=./.git --exclude=./packaging/out \
        --exclude=./autom4te.cache .) | (cd "$work/tree" && tar -xf -)
    logged dist.log sh -c "cd '$work/tree' && autoreconf -fi && mkdir _dist && cd _dist && ../configure && make dist-gzip"
    tarball=$(ls "$work"/tree/_dist/eventfold-*.tar.gz)
fi
[ -f "$tarball" ] || { echo "$0: no such tarball: $tarball" >&2; exit 1; }
tarball=$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")

base=$(basename "$tarball" .tar.gz)      # eventfold-0.1.0
version=${base#eventfold-}
case "$version" in ''|*[!0-9A-Za-z.~+]*) echo "$0: cannot read a version from $tarball" >&2; exit 1 ;; esac

# The packaging metadata must describe the tarball being packaged.
mkdir "$work/deb"
tar -xzf "$tarball" -C "$work/deb"
src="$work/deb/$base"
debversion=$(dpkg-parsechangelog -l "$src/packaging/debian/changelog" -S Version)
specversion=$(sed -n 's/^Version:[[:space:]]*//p' "$src/packaging/rpm/eventfold.spec")
if [ "${debversion%-*}" != "$version" ] || [ "$specversion" != "$version" ]; then
    echo "$0: version mismatch: tarball $version, debian/changelog $debversion, spec $specversion" >&2
    exit 1
fi

# --- Debian ---------------------------------------------------------------
cp -R "$src/packaging/debian" "$src/debian"
cp "$tarball" "$work/deb/eventfold_$version.orig.tar.gz"
deb_opts=${DEB_BUILD_OPTIONS:-parallel=2}
[ "${EF_PKG_NOCHECK:-0}" = 1 ] && deb_opts="$deb_opts nocheck"
logged deb-build.log env DEB_BUILD_OPTIONS="$deb_opts" \
    sh -c "cd '$src' && dpkg-buildpackage -us -uc -b"
changes=$(ls "$work"/deb/eventfold_*.changes)
echo "build-packages: lintian $(basename "$changes")"
lintian_rc=0
lintian --fail-on error --info "$changes" >"$outdir/lintian.log" 2>&1 || lintian_rc=$?
cat "$outdir/lintian.log"
for f in "$work"/deb/*.deb "$work"/deb/*.changes "$work"/deb/*.buildinfo; do
    [ -e "$f" ] && cp "$f" "$outdir/"
done
if [ "$lintian_rc" -ne 0 ]; then
    echo "build-packages: lintian reported errors (exit $lintian_rc)" >&2
    exit 1
fi

# --- RPM ------------------------------------------------------------------
if [ "$deb_only" = no ]; then
    top="$work/rpm"
    mkdir -p "$top/SOURCES"
    cp "$tarball" "$top/SOURCES/"
    cp "$src/packaging/sysusers/eventfold.conf" "$top/SOURCES/eventfold.sysusers"
    set -- --define "_topdir $top" --define "debug_package %{nil}" --nodeps
    [ "${EF_PKG_NOCHECK:-0}" = 1 ] && set -- "$@" --nocheck
    logged rpm-build.log rpmbuild -bb "$@" "$src/packaging/rpm/eventfold.spec"
    find "$top/RPMS" -name '*.rpm' -exec cp {} "$outdir/" \;
fi

echo "build-packages: done; packages in $outdir:"
ls -l "$outdir"
