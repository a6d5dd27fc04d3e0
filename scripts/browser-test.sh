#!/usr/bin/env bash
# End-to-end test of the restoration page (`examples/serve`) in a real browser: builds the
# example, starts it on a free port, runs tests/browser/serve.test.mjs (playwright-core driving
# Debian's headless Chromium), stops the server with SIGTERM and checks that its temporary
# directory is gone.
#
#   scripts/browser-test.sh [--screenshot docs/serve.png]
#
# Needs Node ≥ 18 with npm, and Chromium at $CHROMIUM (default /usr/bin/chromium); when it is
# missing and this runs as root on Debian/Ubuntu, `apt-get install chromium` provides it.
# The example is built in the dev profile with `--features ndarray`, the build `cargo test
# --features ndarray` already makes (PROFILE=release for an optimised build).
set -euo pipefail
cd "$(dirname "$0")/.."

screenshot=()
case "${1:-}" in
    --screenshot) screenshot=(env "SCREENSHOT=$(realpath -m "$2")") ;;
    "") ;;
    *) echo "usage: $0 [--screenshot FILE.png]" >&2; exit 2 ;;
esac

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing chromium (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "error: no Chromium at $CHROMIUM: install Debian's chromium package (apt-get install chromium) or set CHROMIUM" >&2
        exit 1
    fi
fi
command -v npm >/dev/null || { echo "error: the browser test needs Node.js and npm" >&2; exit 1; }

echo "== npm ci (playwright-core)"
npm ci --prefix tests/browser --no-audit --no-fund --prefer-offline --loglevel=error

profile="${PROFILE:-dev}"
echo "== cargo build --example serve (profile $profile)"
cargo build --profile "$profile" --example serve --features ndarray
dir="$profile"; [ "$profile" = dev ] && dir=debug
bin="${CARGO_TARGET_DIR:-target}/$dir/examples/serve"

log="$(mktemp)"
# A small memory budget makes the server restore the demo photo in tiles (the test checks the
# page's tile-by-tile progress); a 1 MB upload limit lets it check the refusal of a larger file.
"$bin" --port 0 --memory-budget 100 --max-upload 1 >"$log" 2>&1 &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT

url=""
for _ in $(seq 600); do
    url="$(sed -n 's/^serving \(http:[^ ]*\).*/\1/p' "$log")"
    [ -n "$url" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$log"; echo "error: the server did not start" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { cat "$log"; echo "error: the server did not start within 60 s" >&2; exit 1; }
tmp="$(sed -n 's/.*(temporary files in \(.*\); Ctrl-C stops)$/\1/p' "$log")"
echo "== server at $url (temporary files in $tmp)"

echo "== browser test"
status=0
DPPD_URL="$url" "${screenshot[@]}" node tests/browser/serve.test.mjs || status=$?

echo "== stopping the server"
kill -TERM "$server"
wait "$server" || { echo "error: the server exited with status $?" >&2; status=1; }
sed 's/^/  server: /' "$log"
if [ -n "$tmp" ] && [ -e "$tmp" ]; then
    echo "error: the server left its temporary directory $tmp behind" >&2
    status=1
fi
if [ "$status" = 0 ] && [ ${#screenshot[@]} -gt 0 ] && command -v pngquant >/dev/null; then
    # The README's screenshot: 256 colours keep it small.
    shot="${screenshot[1]#SCREENSHOT=}"
    pngquant --quality 60-85 --speed 1 --strip --force --output "$shot" "$shot"
    echo "== screenshot $shot ($(stat -c %s "$shot") bytes)"
fi
[ "$status" = 0 ] && echo "== browser test passed"
exit "$status"
