#!/bin/sh
# tests/run_serial.sh TEST [ARGS...]: runs a Criterion test program with its
# tests one after another (--jobs 1). Two workers of one program compiling
# the same kernels into a cold PoCL cache crash PoCL now and then (PoCL
# 3.1: "Failed to create kernel compiler pass inline-kernels", then a crash
# at context release; test_pool, 2 of 10 cold runs, 0 of 20 with --jobs 1).
# make -j still runs the test programs side by side.
t=$1
shift
exec "$t" --jobs 1 "$@"
