#!/usr/bin/env bash
# Renders the sample notices and screenshots each one at phone (390 px) and desktop (1280 px) width with headless
# Chromium, cropped to the email's height. Needs Debian's chromium and imagemagick (apt-get install -y chromium imagemagick).
# Usage, from the crate's root: bash docs/email-screenshots/shoot.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/email-screenshots
samples=target/email-samples
convert=${CONVERT:-/usr/bin/convert}   # ImageMagick's own, not a stand-in earlier in PATH
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT

cargo run --quiet --example render_samples -j 1 -- "$samples" >/dev/null

for html in "$samples"/*.html; do
  name=$(basename "$html" .html)
  for width in 390 1280; do
    profile=$(mktemp -d)
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
      --disable-background-networking --disable-component-update --disable-sync \
      --user-data-dir="$profile" --hide-scrollbars --window-size="$width,2400" \
      --screenshot="$raw/$name-$width.png" "file://$PWD/$html" >/dev/null 2>&1
    rm -rf "$profile"
    # Keep the email and 24 px of the grey background below it: the bounding box of what differs from the corner colour.
    box=$("$convert" "$raw/$name-$width.png" -fuzz 2% -format '%@' info:)
    height=$(echo "$box" | sed -E 's/^[0-9]+x([0-9]+)\+[0-9]+\+([0-9]+)$/\1 \2/' | awk '{print $1 + $2 + 24}')
    "$convert" "$raw/$name-$width.png" -crop "${width}x${height}+0+0" +repage -strip \
      -dither None -colors 256 -define png:compression-level=9 "PNG8:$out/$name-$width.png"
    echo "$out/$name-$width.png ${width}x${height}"
  done
done
