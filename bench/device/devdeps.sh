# Sourced by the device scripts (ROOT set; OUT too for device.txt): where pkg-config cannot find libpcre2-dev,
# libutf8proc-dev, libcjson-dev and libmicrohttpd-dev (the device image lacks them), unpack the .deb files
# carried in .devdeps/ (gitignored; docs/cuda.md has the apt-get download line) into a
# private prefix, never into /, and point PKG_CONFIG_PATH and LD_LIBRARY_PATH there.
# Expects ROOT (the repository root).
if ! pkg-config --exists libpcre2-8 libutf8proc libcjson libmicrohttpd 2>/dev/null; then
  pfx=/tmp/quarrel-devdeps
  libdir=$pfx/usr/lib/x86_64-linux-gnu
  for f in "$ROOT"/.devdeps/*.deb; do
    [ -e "$f" ] || { echo "missing libpcre2-dev/libutf8proc-dev and no .devdeps/*.deb" >&2; exit 1; }
    dpkg -x "$f" "$pfx"
  done
  sed -i "s|^prefix=.*|prefix=$pfx/usr|" "$libdir"/pkgconfig/*.pc
  # libcjson.pc states absolute paths instead of ${prefix}.
  sed -i -e "s#^libdir=/usr#libdir=$pfx/usr#" -e "s#^includedir=/usr#includedir=$pfx/usr#" "$libdir"/pkgconfig/*.pc
  # Only the server links libmicrohttpd; its gnutls (Requires.private) is not carried.
  sed -i "/^Requires.private/d" "$libdir"/pkgconfig/libmicrohttpd.pc 2>/dev/null
  export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

# QUARREL_SHARED: the carried test data (.devdeps/shared) unless set; $OUT/device.txt:
# the card, driver, compiler and commit of this run.
if [ -z "${QUARREL_SHARED:-}" ]; then
  if [ -d "$ROOT/.devdeps/shared" ]; then QUARREL_SHARED=$ROOT/.devdeps/shared; else QUARREL_SHARED=$ROOT/../shared; fi
fi
export QUARREL_SHARED
if [ -n "${OUT:-}" ]; then
  { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv; nvcc --version | tail -2; } | tee "$OUT/device.txt"
  # Only ROOT's own history: a copy without .git would otherwise report whatever repository
  # encloses it (a device run once printed a stale commit that way).
  qr_commit="unknown (no git history here)"
  [ -e "$ROOT/.git" ] && qr_commit=$(git -C "$ROOT" rev-parse --verify -q HEAD 2>/dev/null)
  echo "commit: $qr_commit" | tee -a "$OUT/device.txt"
fi
