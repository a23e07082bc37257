#!/usr/bin/env bash
# Print the path of a headless-capable chromium, installing Debian's `chromium` package with apt-get when missing.
# Exit 2 (and say why on stderr) when there is none and apt-get is unavailable or fails.
set -u
for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; exit 0; fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no chromium and no apt-get to install it" >&2; exit 2
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"
    else echo "ensure_chromium: no chromium, and apt-get needs root (no passwordless sudo)" >&2; exit 2; fi
fi
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } >&2; then
    echo "ensure_chromium: apt-get install chromium failed" >&2; exit 2
fi
command -v chromium || { echo "ensure_chromium: chromium still not on PATH after apt-get" >&2; exit 2; }
