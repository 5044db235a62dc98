# shellcheck shell=bash
# setup.sh -- shared by scripts/demo and scripts/test: Debian packages and
# the meson build.  Source it; it defines functions only.

# Packages the build, the services and the checks need (Debian 12 names).
PF_PACKAGES=(
	build-essential meson ninja-build pkg-config cmake python3
	libnng-dev libmicrohttpd-dev libcurl4-openssl-dev libpq-dev
	libhiredis-dev libmsgpack-dev libjansson-dev libinih-dev libssl-dev
	postgresql postgresql-client redis-server redis-tools curl openssl
	clang-format clang
)

pf_log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
pf_die() { pf_log "error: $*"; exit 1; }

# pf_sudo runs a command as root: directly when we are root, else via sudo.
pf_sudo() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		pf_die "need root (or sudo) to run: $*"
	fi
}

pf_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# pf_install_packages installs whatever of PF_PACKAGES is missing.  The
# package lists are refreshed only if the first attempt fails (a fresh
# container has none).
pf_install_packages() {
	local missing=() p
	command -v dpkg-query >/dev/null 2>&1 || pf_die "not a Debian system (no dpkg-query)"
	for p in "${PF_PACKAGES[@]}"; do
		pf_installed "$p" || missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	pf_log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! pf_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends "${missing[@]}" >&2; then
		pf_log "install failed; refreshing package lists and retrying"
		pf_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
		    pf_die "apt-get update failed"
		pf_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		    --no-install-recommends "${missing[@]}" >&2 ||
		    pf_die "apt-get install failed: ${missing[*]}"
	fi
}

# pf_build DIR [MESON_ARGS...] configures DIR if needed (reconfiguring an
# existing one so MESON_ARGS apply, wiping it if it is unusable) and builds.
# Its chatter goes to stderr: stdout belongs to the calling script.
pf_build() {
	build_dir "$@" >&2
}

build_dir() {
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" ||
		    meson setup --wipe "$dir" "$@" || return 1
	else
		rm -rf "$dir"
		meson setup "$dir" "$@" || return 1
	fi
	ninja -C "$dir"
}

# pf_compat_deps installs the SDKs of tests/compat (the official openai and
# @anthropic-ai/sdk npm packages) into tests/compat/node_modules with
# `npm ci` from the committed package-lock.json -- only when that folder
# does not match the lock file and node version yet (stamp file).  Node.js
# and npm come from Debian (nodejs npm) when missing.
pf_compat_deps() {
	local dir=$PF_ROOT/tests/compat stamp want
	[ -f "$dir/package-lock.json" ] || return 0
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		pf_log "installing: nodejs npm"
		pf_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		    --no-install-recommends nodejs npm >&2 ||
		    { pf_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
		      pf_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		        --no-install-recommends nodejs npm >&2; } ||
		    { pf_log "error: apt-get install nodejs npm failed"; return 1; }
	fi
	stamp=$dir/node_modules/.pf-installed
	want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1) node $(node --version)"
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		return 0
	fi
	pf_log "npm ci in tests/compat"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
	    { pf_log "error: npm ci in tests/compat failed"; return 1; }
	printf '%s\n' "$want" >"$stamp"
}
