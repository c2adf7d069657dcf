#!/usr/bin/env bash
# Install the system packages dualasr needs, through apt (Debian or Ubuntu):
# the speech synthesizers of the synthetic corpus and sox. MBROLA voices and
# pico live in Debian's contrib/non-free (Ubuntu: multiverse), which this
# script enables when a package is missing. Idempotent: exits at once when
# everything is installed. Needs root or sudo.
set -euo pipefail

PACKAGES=(
  espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 mbrola-hn1
  # MBROLA voices of other languages that speak accented English (engines.py)
  mbrola-af1 mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-fr1
  mbrola-fr4 mbrola-gr2 mbrola-hu1 mbrola-nl2 mbrola-pl1 mbrola-ro1 mbrola-sw1
  flite festival festvox-kallpc16k festvox-kdlpc16k festvox-rablpc16k festvox-don festvox-us-slt-hts
  libttspico-utils rhvoice rhvoice-english sox
  # Headless browser and its WebDriver for tests/report/test_report_browser.py.
  chromium chromium-driver
)
# Ubuntu ships Chromium only as a snap (its chromium-browser deb installs the
# snap, which fails without snapd): there the browser test is skipped instead.
if grep -qi ubuntu /etc/os-release; then
  kept=()
  for p in "${PACKAGES[@]}"; do [[ $p == chromium* ]] || kept+=("$p"); done
  PACKAGES=("${kept[@]}")
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing system packages: ${missing[*]}"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=(sudo); else
    echo "error: installing ${missing[*]} needs root or sudo" >&2; exit 1
  fi
fi

# Add the archive components that hold MBROLA voices and pico.
enable_components() {
  local want=("$@") f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    for c in "${want[@]}"; do
      grep -Eq "^Components:.*[[:space:]]${c}([[:space:]]|$)" "$f" \
        || "${SUDO[@]}" sed -i -E "s/^(Components:.*)$/\1 ${c}/" "$f"
    done
  done
  if [ -f /etc/apt/sources.list ]; then
    for c in "${want[@]}"; do
      "${SUDO[@]}" sed -i -E "/^deb /{/[[:space:]]${c}([[:space:]]|$)/! s/$/ ${c}/}" /etc/apt/sources.list
    done
  fi
}
if grep -qi ubuntu /etc/os-release; then
  enable_components universe multiverse
else
  enable_components contrib non-free
fi

"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
