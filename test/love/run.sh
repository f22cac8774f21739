#!/bin/sh
# LÖVE example test: examples/love under xvfb-run with the LuaJIT build of
# cfuture.core ($1: the directory holding cfuture/core.so). The game plays
# for 3 s at 60 frames per second while its tasks animate comets, spawn
# sparks and stream a 4 MiB file; the frames must keep their rate.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
moddir=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 4194304 /dev/urandom >"$tmp/asset.bin"
mkdir -m 700 "$tmp/run"
export XDG_RUNTIME_DIR="$tmp/run" XDG_DATA_HOME="$tmp" HOME="$tmp"
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" LUA_CPATH="$moddir/?.so;;"
export CFUTURE_LOVE_REPORT="$tmp/report" CFUTURE_LOVE_SECONDS=3
status=0
timeout 60 xvfb-run -a love "$root/examples/love" "$tmp/asset.bin" >"$tmp/log" 2>&1 || status=$?
cat "$tmp/report" 2>/dev/null || true
if [ "$status" -ne 0 ] || [ ! -s "$tmp/report" ]; then
  grep -v ALSA "$tmp/log" || true
  echo "love exited with $status"
  exit 1
fi
get() { sed -n "s/^$1=//p" "$tmp/report"; }
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAILED: $1"; fail=1; fi; }
is() { [ "$(echo "$1" | bc)" = 1 ]; }
frames=$(get frames)
check "about 60 frames per second ($frames frames in $(get seconds) s)" 'is "$frames >= 160 && $frames <= 190"'
check "mean frame 15.5-18.5 ms ($(get mean_frame_ms) ms)" 'is "$(get mean_frame_ms) >= 15.5 && $(get mean_frame_ms) <= 18.5"'
check "at most 5% of frames late, over 33 ms ($(get late_frames))" 'is "$(get late_frames) * 20 <= $frames"'
check "no frame over 200 ms (worst $(get worst_frame_ms) ms)" 'is "$(get worst_frame_ms) < 200"'
check "the level's 6 comets flew" '[ "$(get comets)" = 6 ]'
check "the 16 ms comet kept up with the frames ($(get fast_comet_moves) moves)" 'is "$(get fast_comet_moves) * 2 >= $frames"'
check "a spark every 250 ms ($(get sparks))" 'is "$(get sparks) >= 10 && $(get sparks) <= 14"'
check "the 4 MiB file was streamed in ($(get loaded) bytes in $(get load_ms) ms)" \
  '[ "$(get loaded)" = 4194304 ] && [ "$(get load_size)" = 4194304 ] && [ "$(get load_error)" = none ]'
check "mean step under 2 ms ($(get step_us_mean) us)" 'is "$(get step_us_mean) < 2000"'
exit $fail
