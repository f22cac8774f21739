#!/bin/sh
# fetch_libs.sh DIR: the Lua files of Debian's lua-nginx-redis and
# lua-nginx-memcached (lua-resty-redis, lua-resty-memcached) unpacked into
# DIR (DIR/nginx/redis.lua, DIR/nginx/memcached.lua, DIR/resty/*.lua).
# The packages are downloaded, never installed: installing them pulls in
# nginx-extras, whose LuaJIT replaces Debian's. Safe to run concurrently.
set -eu
dir=$1
[ -f "$dir/resty/redis.lua" ] && [ -f "$dir/resty/memcached.lua" ] && exit 0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cfuture-libs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# apt's sandbox user cannot write into a root-owned mktemp directory
chmod 755 "$tmp"
apt-get download -q lua-nginx-redis lua-nginx-memcached >/dev/null 2>&1 ||
  { apt-get update -qq >/dev/null 2>&1 && apt-get download -q lua-nginx-redis lua-nginx-memcached >/dev/null 2>&1; } ||
  { echo "fetch_libs.sh: apt-get download lua-nginx-redis lua-nginx-memcached failed" >&2; exit 1; }
for deb in *.deb; do dpkg -x "$deb" x; done
mkdir -p out/resty
cp -r x/usr/share/lua/5.1/nginx out/
# the same files under the names OpenResty programs require
cp x/usr/share/lua/5.1/nginx/redis.lua out/resty/redis.lua
cp x/usr/share/lua/5.1/nginx/memcached.lua out/resty/memcached.lua
mkdir -p "$(dirname "$dir")"
# rename(2) replaces at most an empty directory: one writer wins, the
# others find the files in place
mv -T out "$dir" 2>/dev/null || true
[ -f "$dir/resty/redis.lua" ]
