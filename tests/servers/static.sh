#!/usr/bin/env bash
# The shipped scripts are shellcheck-clean and the Vagrantfile is valid.
. "$(dirname "$0")/lib.sh"
setup
scripts=("$REPO/scripts/demo" "$REPO/scripts/provision-lamp.sh" "$REPO/scripts/enroll"
	"$REPO/scripts/lib/render.sh" "$REPO"/tests/servers/*.sh "$REPO/tests/servers/run")
if command -v shellcheck >/dev/null; then
	for s in "${scripts[@]}"; do
		check "shellcheck ${s#"$REPO"/}" shellcheck -x "$s"
	done
	for s in "$REPO/scripts/demo" "$REPO/scripts/provision-lamp.sh" "$REPO/scripts/enroll"; do
		check "${s#"$REPO"/} is POSIX sh (#!/bin/sh, set -eu)" bash -c "head -n 1 '$s' | grep -qx '#!/bin/sh' && grep -qx 'set -eu' '$s'"
	done
else
	skip "shellcheck not installed"
fi
# Its readiness check once hung 12 minutes on an Apache that accepted and never answered.
check "provision-lamp.sh: every curl has a time limit (--max-time)" \
	bash -c "! grep -E '(^|[^-])curl +-' '$REPO/scripts/provision-lamp.sh' | grep -v '^[[:space:]]*#' | grep -v -- '--max-time'"
if [ "${GETACERT_TEST_VAGRANT:-1}" = 0 ]; then
	skip "vagrant validate (GETACERT_TEST_VAGRANT=0)"
elif command -v vagrant >/dev/null; then
	# (VAGRANT_DOTFILE_PATH: no vagrant/.vagrant/ left in the repository.)
	check "vagrant validate (vagrant/Vagrantfile)" bash -c "cd '$REPO/vagrant' && VAGRANT_DOTFILE_PATH='$T/vagrant-dot' vagrant validate"
else
	skip "vagrant not installed"
fi
