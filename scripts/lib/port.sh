# shellcheck shell=bash
# free_port: a loopback TCP port no socket uses, for a test or bench server to bind.
# It is picked below the kernel's ephemeral range: a port from that range can be taken
# by any outgoing connection between the check and the server's bind (it was, once:
# Apache's "Address already in use" in a CI run).
free_port() {
	local p low
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range
	[ "$low" -gt 11000 ] || low=32768
	while :; do
		p=$((10000 + RANDOM % (low - 10000)))
		ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}
