#!/usr/bin/env bash
# Debian's chromium for the website's browser test, unpacked into a folder (default .chromium/),
# without root: apt-get reads the package lists into that folder, downloads chromium and each
# dependency this machine lacks, and dpkg -x unpacks them there (nothing is installed system-wide).
# Prints nothing more once the folder holds a chromium that starts; scripts/site_test.py finds it there.
#
#     bash scripts/install_chromium.sh [FOLDER]
set -euo pipefail
DEST=$(realpath -m "${1:-.chromium}")
BINARY="$DEST/usr/lib/chromium/chromium"
RUN="$DEST/run-chromium"

if [ -x "$RUN" ] && "$RUN" --headless --no-sandbox --version >/dev/null 2>&1; then
  exit 0
fi

rm -rf "$DEST"
mkdir -p "$DEST/apt/lists/partial" "$DEST/apt/cache/archives/partial" "$DEST/debs"
# A private apt state: lists and cache in DEST, no lock on the system's, no privilege drop to _apt.
APT=(-o "Dir::State::Lists=$DEST/apt/lists" -o "Dir::Cache=$DEST/apt/cache" -o Debug::NoLocking=1
     -o APT::Sandbox::User="$(id -un)" -q)
echo "chromium: reading the package lists into $DEST/apt"
apt-get "${APT[@]}" update >/dev/null

# chromium and everything it depends on, minus what this machine already has.
mapfile -t wanted < <(apt-cache "${APT[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances --no-pre-depends chromium | grep -v '^ ' | grep -v '^<' | sort -u)
missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
echo "chromium: downloading ${#missing[@]} packages (chromium and the libraries this machine lacks)"
(cd "$DEST/debs" && apt-get "${APT[@]}" download "${missing[@]}" >/dev/null)
for deb in "$DEST"/debs/*.deb; do
  dpkg -x "$deb" "$DEST"
done
rm -rf "$DEST/debs" "$DEST/apt"

# The unpacked libraries come first on the library path; fontconfig reads the unpacked configuration
# where the machine has none.
cat > "$RUN" <<EOF
#!/usr/bin/env bash
here=\$(dirname "\$(realpath "\$0")")
export LD_LIBRARY_PATH="\$here/usr/lib/x86_64-linux-gnu:\$here/usr/lib/x86_64-linux-gnu/pulseaudio:\$here/lib/x86_64-linux-gnu:\$here/usr/lib/chromium\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
if [ ! -e /etc/fonts/fonts.conf ] && [ -e "\$here/etc/fonts/fonts.conf" ]; then
  export FONTCONFIG_FILE="\$here/etc/fonts/fonts.conf"
fi
exec "\$here/usr/lib/chromium/chromium" "\$@"
EOF
chmod +x "$RUN"
test -x "$BINARY"
"$RUN" --headless --no-sandbox --version
