#!/usr/bin/env bash
# Builds the aoed Debian package from this source tree, without debhelper:
#   npm run package:deb          -> dist/aoed_<version>_<arch>.deb
#
# Needs: node >= 20 with this repo's dev dependencies installed (npm ci),
# a C++ toolchain for node-gyp, dpkg-deb; dpkg-shlibdeps (dpkg-dev) if present.
# Nothing outside a temporary staging directory and the output file is written.
#
# Environment:
#   AOED_DEB_NODE      bundled (default): ship the Node.js runtime this build
#                      runs on in /usr/lib/aoed/node, so the package works on
#                      bookworm (whose nodejs is 18);
#                      system: ship no runtime, Depends: nodejs (>= 20), use /usr/bin/node
#   AOED_DEB_OUT       output directory (default: dist/)
#   AOED_DEB_COMPRESS  xz (default), zstd, gzip or none
#   AOED_DEB_MAINTAINER  the Maintainer: field
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG=$REPO/packaging
OUT_DIR=${AOED_DEB_OUT:-$REPO/dist}
NODE_MODE=${AOED_DEB_NODE:-bundled}
COMPRESS=${AOED_DEB_COMPRESS:-xz}
MAINTAINER=${AOED_DEB_MAINTAINER:-aoed developers <aoed@localhost>}

step() { printf '== %s [%ss]\n' "$*" "$SECONDS" >&2; }
die() {
  printf 'build-deb: %s\n' "$*" >&2
  exit 1
}

case $NODE_MODE in bundled | system) ;; *) die "AOED_DEB_NODE must be bundled or system, not '$NODE_MODE'" ;; esac
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"
NODE_BIN=$(readlink -f "$(command -v node)")
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 20 ] || die "node $(node --version) is too old: aoed needs >= 20"
[ -x "$REPO/node_modules/.bin/tsc" ] || die "no node_modules/.bin/tsc: run npm ci first"

VERSION=$(node -p 'require(process.argv[1]).version' "$REPO/package.json")
DEB_VERSION=${VERSION/-/\~} # 1.2.0-rc.1 -> 1.2.0~rc.1 (sorts before 1.2.0)
ARCH=$(dpkg --print-architecture)
DEB=$OUT_DIR/aoed_${DEB_VERSION}_${ARCH}.deb

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aoed-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
APP=$ROOT/usr/lib/aoed
umask 022
mkdir -p "$APP"

# ---------------------------------------------------------------- TypeScript
step "compiling src/ (tsc)"
cat >"$WORK/tsconfig.json" <<EOF
{
  "extends": "$REPO/tsconfig.json",
  "compilerOptions": {
    "outDir": "$WORK/tsc",
    "rootDir": "$REPO",
    "sourceMap": false,
    "typeRoots": ["$REPO/node_modules/@types"]
  },
  "include": ["$REPO/src/**/*.ts", "$REPO/src/**/*.cts"]
}
EOF
"$REPO/node_modules/.bin/tsc" -p "$WORK/tsconfig.json"
mkdir -p "$APP/dist"
cp -r "$WORK/tsc/src" "$APP/dist/src"
# aoed's entry is CommonJS (it sizes libuv's thread pool before any ES module loads).
for entry in aoed.cjs aoectl.js; do
  [ -f "$APP/dist/src/bin/$entry" ] || die "tsc produced no dist/src/bin/$entry"
done

# ---------------------------------------------------------------- native addon
step "building the native addon (node-gyp)"
if command -v node-gyp >/dev/null; then
  NODE_GYP=(node-gyp)
else
  NODE_GYP=(node "$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js")
fi
# Outside `npm run`, pass on npm's nodedir (headers) the way npm would.
if [ -z "${npm_config_nodedir:-}" ]; then
  nodedir=$(npm config get nodedir 2>/dev/null || true)
  if [ -n "$nodedir" ] && [ "$nodedir" != undefined ] && [ "$nodedir" != null ]; then
    export npm_config_nodedir=$nodedir
  fi
fi
mkdir -p "$WORK/addon"
cp "$REPO/binding.gyp" "$WORK/addon/"
cp -r "$REPO/native" "$WORK/addon/native"
ln -s "$REPO/node_modules" "$WORK/addon/node_modules"
(cd "$WORK/addon" && "${NODE_GYP[@]}" rebuild --release -j "$(nproc)" >"$WORK/node-gyp.log" 2>&1) ||
  {
    tail -40 "$WORK/node-gyp.log" >&2
    die "node-gyp failed"
  }
install -D -m 0644 "$WORK/addon/build/Release/aoed_native.node" "$APP/build/Release/aoed_native.node"
strip --strip-unneeded "$APP/build/Release/aoed_native.node"

# ---------------------------------------------------------------- production dependencies
step "installing production dependencies (npm ci --omit=dev)"
cp "$REPO/package.json" "$REPO/package-lock.json" "$APP/"
(cd "$APP" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
rm -f "$APP/package-lock.json"
# Nothing loads these at run time; license files stay.
find "$APP/node_modules" -type f \( \( -name '*.md' ! -iname 'license*' \) -o -name '*.d.ts' \
  -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '.eslintrc*' -o -name '.npmignore' \
  -o -name '.gitignore' -o -name '.gitattributes' -o -name '.editorconfig' -o -name '.travis.yml' \) \
  -exec rm -f {} +
find "$APP/node_modules" -depth -type d -name .github -exec rm -rf {} +

# ---------------------------------------------------------------- Node.js runtime
if [ "$NODE_MODE" = bundled ]; then
  step "bundling the Node.js runtime ($NODE_BIN, $(node --version))"
  install -D -m 0755 "$NODE_BIN" "$APP/node/bin/node"
  strip --strip-unneeded "$APP/node/bin/node"
  NODE_RUN=/usr/lib/aoed/node/bin/node
  license=""
  for f in "$(dirname "$NODE_BIN")/../share/doc/nodejs/LICENSE" "$(dirname "$NODE_BIN")/../LICENSE" \
    /usr/share/doc/nodejs/LICENSE; do
    if [ -f "$f" ]; then
      license=$f
      break
    fi
  done
  [ -n "$license" ] || die "cannot find Node.js's LICENSE next to $NODE_BIN: it must ship with the runtime"
  install -D -m 0644 "$license" "$ROOT/usr/share/doc/aoed/LICENSE.nodejs"
else
  NODE_RUN=/usr/bin/node
fi

# ---------------------------------------------------------------- wrappers, config, unit, docs
step "laying out the package tree"
for entry in aoed.cjs aoectl.js; do
  bin=${entry%.*}
  install -d "$ROOT/usr/bin"
  cat >"$ROOT/usr/bin/$bin" <<EOF
#!/bin/sh
# $bin from the aoed package: the daemon's files live in /usr/lib/aoed.
exec $NODE_RUN /usr/lib/aoed/dist/src/bin/$entry "\$@"
EOF
  chmod 0755 "$ROOT/usr/bin/$bin"
done
install -D -m 0644 "$PKG/aoed.yaml" "$ROOT/etc/aoed.yaml"
install -D -m 0644 "$PKG/aoed.service" "$ROOT/lib/systemd/system/aoed.service"
for page in "$REPO"/docs/man/*.[1-8]; do
  section=${page##*.}
  install -D -m 0644 "$page" "$ROOT/usr/share/man/man$section/$(basename "$page")"
  gzip -9n "$ROOT/usr/share/man/man$section/$(basename "$page")"
done
DOC=$ROOT/usr/share/doc/aoed
install -D -m 0644 "$PKG/debian/copyright" "$DOC/copyright"
install -D -m 0644 "$PKG/debian/README.Debian" "$DOC/README.Debian"
install -D -m 0644 "$REPO/etc/aoed.yaml" "$DOC/examples/aoed.yaml"
if [ -f "$REPO/README.md" ]; then install -m 0644 "$REPO/README.md" "$DOC/README.md"; fi
git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  printf 'aoed (%s) unstable; urgency=medium\n\n' "$DEB_VERSION"
  printf '  * Built by packaging/build-deb.sh from commit %s.\n\n' "$git_rev"
  printf ' -- %s  %s\n' "$MAINTAINER" "$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$DOC/changelog.gz"
chmod 0644 "$DOC/changelog.gz"

# ---------------------------------------------------------------- DEBIAN/
step "writing DEBIAN/ and building the .deb"
install -d "$ROOT/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "$PKG/debian/$script" "$ROOT/DEBIAN/$script"
done
echo /etc/aoed.yaml >"$ROOT/DEBIAN/conffiles"

depends="passwd"
if [ "$NODE_MODE" = bundled ]; then
  shlibs=""
  if command -v dpkg-shlibdeps >/dev/null; then
    mkdir -p "$WORK/shlibs/debian"
    printf 'Source: aoed\n\nPackage: aoed\nArchitecture: any\n' >"$WORK/shlibs/debian/control"
    shlibs=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O -e"$APP/node/bin/node" \
      -e"$APP/build/Release/aoed_native.node" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
  fi
  # What `dpkg-shlibdeps` says for Node 20 on bookworm, when it is not installed.
  depends="${shlibs:-libc6 (>= 2.34), libgcc-s1 (>= 3.4), libstdc++6 (>= 5.2)}, $depends"
else
  depends="nodejs (>= 20), libc6, libgcc-s1, libstdc++6, $depends"
fi
installed_size=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat >"$ROOT/DEBIAN/control" <<EOF
Package: aoed
Version: $DEB_VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $installed_size
Depends: $depends
Suggests: aoetools
Section: net
Priority: optional
Description: ATA-over-Ethernet (AoE) storage target daemon
 aoed exports block devices and image files to AoE initiators (such as the
 Linux aoe driver) on one or more Ethernet interfaces: all exports in one
 process, with MAC access lists, reservations, hot reload of its YAML
 config, Prometheus metrics and an admin tool, aoectl.
 .
 The systemd unit runs it as the unprivileged user aoed with only
 CAP_NET_RAW. A fresh install exports nothing and is not started.
EOF
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles" "$ROOT/DEBIAN/md5sums"

mkdir -p "$OUT_DIR"
case $COMPRESS in xz) zopt=(-Zxz) ;; zstd) zopt=(-Zzstd) ;; gzip) zopt=(-Zgzip) ;; none) zopt=(-Znone) ;;
*) die "AOED_DEB_COMPRESS must be xz, zstd, gzip or none" ;;
esac
dpkg-deb --root-owner-group --threads-max="$(nproc)" "${zopt[@]}" --build "$ROOT" "$DEB" >&2
step "done"
echo "$DEB"
