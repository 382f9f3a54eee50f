#!/bin/sh
# tests/test_install.sh: checks libqgate as a user gets it after
# `make install`: the library exports only public qg_ functions, the
# installed headers and qgate.pc are enough to compile and link
# examples/train_tiny.c with `pkg-config --cflags --libs qgate`, the program
# runs against the installed libqgate.so, and the installed qgate CLI runs.
#
# make check runs it (examples/local.mk) with QG_ROOT unset: it installs the
# build tree with `make install DESTDIR=<stage>` first and checks the staged
# copy. make installcheck sets QG_ROOT to $(DESTDIR) (usually empty) and
# checks what is installed already. The environment (set by
# examples/local.mk) names CC, MAKE, the build and source trees and the
# configured prefix, bindir, libdir, includedir and version.
#
# It prints a Criterion-style "Synthesis" line so .ci/run counts its checks.
set -u
: "${CC:=cc}" "${MAKE:=make}" "${QG_WERROR:=}"
for v in QG_BUILDDIR QG_SRCDIR QG_PREFIX QG_BINDIR QG_LIBDIR QG_INCLUDEDIR QG_VERSION; do
    eval "test -n \"\${$v:-}\"" || { echo "test_install.sh: $v is not set" >&2; exit 99; }
done
command -v pkg-config >/dev/null 2>&1 || { echo "pkg-config not found: skipped"; exit 77; }

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() {
    echo "[====] Synthesis: Tested: $((passed + failed)) | Passing: $passed | Failing: $failed | Crashing: 0"
    [ "$failed" -eq 0 ] || exit 1
    # Keep the work directory of a failed run for inspection.
    rm -rf "$work"
    exit 0
}

if [ "${QG_ROOT+set}" = set ]; then
    root=$QG_ROOT
    work=$QG_BUILDDIR/tests/cache/installcheck
    rm -rf "$work" && mkdir -p "$work" || exit 99
else
    work=$QG_BUILDDIR/tests/cache/test_install
    rm -rf "$work" && mkdir -p "$work" || exit 99
    root=$work/stage
    # A make of its own, not a job of the `make check` that runs this test.
    # $MAKE may carry options, so it is split into words.
    # shellcheck disable=SC2086
    if env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $MAKE -C "$QG_BUILDDIR" install \
        DESTDIR="$root" >"$work/install.log" 2>&1; then
        ok "make install DESTDIR=$root"
    else
        tail -n 30 "$work/install.log"
        bad "make install DESTDIR=$root"
        finish
    fi
fi
# Kernel and program caches of the runs below stay in the work directory.
: "${QGATE_CACHE_DIR:=$work/cache/qgate}" "${POCL_CACHE_DIR:=$work/cache/pocl}"
: "${QGATE_TUNE_DB:=$work/cache/tuning.json}"
export QGATE_CACHE_DIR POCL_CACHE_DIR QGATE_TUNE_DB

lib=$root$QG_LIBDIR/libqgate.so
if [ -f "$lib" ] && [ -f "$root$QG_INCLUDEDIR/qgate.h" ] &&
    [ -f "$root$QG_INCLUDEDIR/qgate/version.h" ] && [ -f "$root$QG_LIBDIR/pkgconfig/qgate.pc" ]; then
    ok "library, headers and qgate.pc installed under ${root:-/}"
else
    bad "library, headers or qgate.pc missing under ${root:-/}"
    finish
fi

# Only the public API is exported: no internal qg__ symbol, no qg_ref_
# C reference, but the public entry points are there.
if command -v nm >/dev/null 2>&1; then
    nm -D --defined-only "$lib" | awk '{print $NF}' >"$work/exports.txt"
    internal=$(grep -c -E '^qg__|^qg_ref_' "$work/exports.txt")
    public=$(grep -c -x -E 'qg_version|qg_ctx_new|qg_tensor_new|qg_status_str' "$work/exports.txt")
    if [ "$internal" -eq 0 ] && [ "$public" -eq 4 ]; then
        ok "libqgate.so exports $(grep -c '^qg_' "$work/exports.txt") qg_ functions and no internal ones"
    else
        grep -E '^qg__|^qg_ref_' "$work/exports.txt" | head -n 5
        bad "exports: $internal internal symbols, $public of 4 public entry points"
    fi
fi

# pkg-config reads the installed qgate.pc; its prefix is moved to the
# staging root (or, with an explicit --libdir outside the prefix, the whole
# file system view is).
pc() {
    PKG_CONFIG_PATH=$root$QG_LIBDIR/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH} \
        pkg-config --define-variable=prefix="$root$QG_PREFIX" "$@"
}
case $(pc --variable=libdir qgate) in
    "$root$QG_LIBDIR") ;;
    *) export PKG_CONFIG_SYSROOT_DIR="$root"; pc() {
           PKG_CONFIG_PATH=$root$QG_LIBDIR/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH} \
               pkg-config "$@"
       } ;;
esac
if flags=$(pc --cflags --libs qgate) && [ "$(pc --modversion qgate)" = "$QG_VERSION" ]; then
    ok "pkg-config qgate $QG_VERSION: $flags"
else
    bad "pkg-config --cflags --libs qgate (or its version) failed"
    finish
fi

# Strict C11 on the example: the installed headers need no GNU extension.
# $flags is split into words on purpose.
# shellcheck disable=SC2086
if $CC -std=c11 -pedantic -Wall -Wextra $QG_WERROR -o "$work/train_tiny" \
    "$QG_SRCDIR/examples/train_tiny.c" $flags >"$work/cc.log" 2>&1; then
    ok "examples/train_tiny.c compiled and linked against the installed copy"
else
    cat "$work/cc.log"
    bad "examples/train_tiny.c does not build against the installed copy"
    finish
fi

# Run it with the installed library first on the search path, and make sure
# that is the one the loader picks.
LD_LIBRARY_PATH=$root$QG_LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
if command -v ldd >/dev/null 2>&1; then
    if ldd "$work/train_tiny" | grep -q "libqgate\.so.* => $root$QG_LIBDIR/"; then
        ok "train_tiny loads $root$QG_LIBDIR/libqgate.so"
    else
        ldd "$work/train_tiny"
        bad "train_tiny does not load the installed libqgate.so"
    fi
fi
if "$work/train_tiny" >"$work/run.log" 2>&1 && grep -q "qgate $QG_VERSION (headers $QG_VERSION)" "$work/run.log" &&
    grep -q "round trip ok" "$work/run.log"; then
    ok "train_tiny ran: $(head -n 1 "$work/run.log")"
else
    cat "$work/run.log"
    bad "train_tiny failed"
fi

# The installed CLI runs and reports the configured version.
if [ "$("$root$QG_BINDIR/qgate" --version 2>&1)" = "qgate $QG_VERSION" ]; then
    ok "installed qgate --version prints qgate $QG_VERSION"
else
    bad "installed qgate --version: $("$root$QG_BINDIR/qgate" --version 2>&1)"
fi
finish
