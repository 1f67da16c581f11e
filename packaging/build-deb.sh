#!/usr/bin/env bash
# Builds the aoed Debian package from this source tree, without debhelper:
#   npm run package:deb                     -> dist/aoed_<version>_<arch>.deb
#   npm run package:deb -- --bundle-node    -> dist/aoed_<version>+node<N>_<arch>.deb
#
# The default package is Debian-native: it ships no runtime, Depends: nodejs
# (>= 20) (Debian 13 trixie ships Node.js 20) and runs /usr/bin/node, so
# Node.js gets the distribution's security updates. --bundle-node ships the
# Node.js this build runs on in /usr/lib/aoed/node instead, for bookworm
# (whose nodejs is 18); that copy is updated only by rebuilding the package.
#
# Options:
#   --bundle-node        the bundled-runtime variant (above)
#   --out DIR            output directory (default: dist/)
#   --compress METHOD    xz (default), zstd, gzip or none
#   --maintainer 'NAME <EMAIL>'  the Maintainer: field (default: a placeholder)
#
# Needs: node >= 20 with this repo's dev dependencies installed (npm ci),
# a C++ toolchain for node-gyp, dpkg-deb; dpkg-shlibdeps (dpkg-dev) if present.
# Nothing outside a temporary staging directory and the output file is written.
# Prints the path of the .deb on the last line of stdout.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG=$REPO/packaging
OUT_DIR=$REPO/dist
NODE_MODE=system
COMPRESS=xz
MAINTAINER="aoed developers <aoed@example.org>"

step() { printf '== %s [%ss]\n' "$*" "$SECONDS" >&2; }
die() {
  printf 'build-deb: %s\n' "$*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case $1 in
  --bundle-node) NODE_MODE=bundled ;;
  --out | --compress | --maintainer)
    [ $# -ge 2 ] || die "$1 needs a value"
    case $1 in --out) OUT_DIR=$(realpath -m "$2") ;; --compress) COMPRESS=$2 ;; --maintainer) MAINTAINER=$2 ;; esac
    shift
    ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
case $COMPRESS in xz | zstd | gzip | none) ;; *) die "--compress must be xz, zstd, gzip or none, not '$COMPRESS'" ;; esac
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"
NODE_BIN=$(readlink -f "$(command -v node)")
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 20 ] || die "node $(node --version) is too old: aoed needs >= 20"
[ -x "$REPO/node_modules/.bin/tsc" ] || die "no node_modules/.bin/tsc: run npm ci first"

VERSION=$(node -p 'require(process.argv[1]).version' "$REPO/package.json")
DEB_VERSION=${VERSION/-/\~} # 1.2.0-rc.1 -> 1.2.0~rc.1 (sorts before 1.2.0)
# The bundled variant says which runtime it carries (and sorts after the native one).
if [ "$NODE_MODE" = bundled ]; then DEB_VERSION=$DEB_VERSION+node$NODE_MAJOR; fi
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
# The wrappers in /usr/bin run them with an explicit node: no #! lines in library files.
find "$APP/dist" -type f -name '*.*js' -exec sed -i '1{/^#!/d}' {} +

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
# Debian's hardening flags (fortify, relro, bind-now) for the addon, where dpkg-buildflags is present.
if command -v dpkg-buildflags >/dev/null; then
  eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --export=sh)"
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
# Only what runs: node-addon-api is a build dependency of the addon (compiled
# above), the command-line front ends of the libraries are never run, and
# tests, benchmarks, examples, docs and web pages are never loaded. License
# files stay. (Both YAML parsers stay: src/config uses js-yaml to read values
# and yaml for positions in messages.)
rm -rf "$APP/node_modules/node-addon-api" "$APP/node_modules/.bin" "$APP/node_modules/.package-lock.json"
find "$APP/node_modules" -depth -type d \( -name test -o -name tests -o -name benchmarks -o -name bench \
  -o -name docs -o -name docsify -o -name example -o -name examples -o -name .github -o -name .husky \) \
  -exec rm -rf {} +
find "$APP/node_modules" -type f \( \( -name '*.md' ! -iname 'license*' \) -o -name '*.d.ts' \
  -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '.eslintrc*' -o -name '.npmignore' \
  -o -name '.gitignore' -o -name '.gitattributes' -o -name '.editorconfig' -o -name '.travis.yml' \
  -o -name '*.png' -o -name '*.ico' -o -name '*.html' -o -name CNAME -o -name tsconfig.json \
  -o -name '*.sh' \) -exec rm -f {} +
rm -f "$APP/node_modules/js-yaml/bin/js-yaml.js" "$APP/node_modules/yaml/bin.mjs" "$APP/node_modules/pino/bin.js"
rmdir "$APP/node_modules/js-yaml/bin" 2>/dev/null || true
# Whatever still starts with #! is a library file: not executable, as lintian expects.
find "$APP/node_modules" -type f -perm /111 -exec chmod a-x {} +
find "$APP/node_modules" -depth -type d -empty -delete

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
cat >"$APP/aoed-device-access" <<EOF
#!/bin/sh
# Run by aoed.service as root: the service user's ACLs on the exported block devices.
exec $NODE_RUN /usr/lib/aoed/dist/src/bin/device-access.js "\$@"
EOF
chmod 0755 "$APP/aoed-device-access"
install -D -m 0644 "$PKG/aoed.yaml" "$ROOT/etc/aoed.yaml"
install -D -m 0644 "$PKG/aoed.service" "$ROOT/usr/lib/systemd/system/aoed.service"
for tool in aoed aoectl; do
  install -D -m 0644 "$PKG/bash-completion/$tool" "$ROOT/usr/share/bash-completion/completions/$tool"
done
install -D -m 0644 "$PKG/debian/lintian-overrides" "$ROOT/usr/share/lintian/overrides/aoed"
if [ "$NODE_MODE" = bundled ]; then
  cat "$PKG/debian/lintian-overrides.bundled-node" >>"$ROOT/usr/share/lintian/overrides/aoed"
fi
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

# acl: setfacl/getfacl for aoed-device-access; init-system-helpers: deb-systemd-helper/-invoke.
depends="acl, init-system-helpers (>= 1.52), passwd"
elves=("$APP/build/Release/aoed_native.node")
if [ "$NODE_MODE" = bundled ]; then elves+=("$APP/node/bin/node"); fi
shlibs=""
if command -v dpkg-shlibdeps >/dev/null; then
  mkdir -p "$WORK/shlibs/debian"
  printf 'Source: aoed\n\nPackage: aoed\nArchitecture: any\n' >"$WORK/shlibs/debian/control"
  shlibs=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O "${elves[@]/#/-e}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
fi
# Without dpkg-shlibdeps: what it says for Node 20 and the addon on bookworm.
shlibs=${shlibs:-libc6 (>= 2.34), libgcc-s1 (>= 3.4), libstdc++6 (>= 11)}
if [ "$NODE_MODE" = bundled ]; then
  depends="$shlibs, $depends"
else
  depends="nodejs (>= 20), $shlibs, $depends"
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
dpkg-deb --root-owner-group --threads-max="$(nproc)" "-Z$COMPRESS" --build "$ROOT" "$DEB" >&2
step "done"
echo "$DEB"
