# netns.sh: what run-bench.sh, scale.sh, profile-q1.sh and stages-q1.sh share, sourced by each. Two network
# namespaces $NSA and $NSB joined by a veth pair whose ends are both $IFACE
# (and by more with add_link),
# and stopping the load client ($CLIENT_PID) and the target they started
# ($TARGET_PID) with whatever it spawned.

# all descendants of a PID
descendants() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ par[$1] = $2 }
		END {
			inset[root] = 1
			do {
				changed = 0
				for (p in par)
					if (!(p in inset) && (par[p] in inset)) { inset[p] = 1; changed = 1 }
			} while (changed)
			for (p in inset) if (p != root) print p
		}'
}

# stop_target [GRACE]: SIGTERM to $TARGET_PID, SIGKILL after GRACE tenths of a second (default 30)
stop_target() {
	[[ -n $TARGET_PID ]] || return 0
	local grace=${1:-30} kids p i
	kids=$(descendants "$TARGET_PID" | tr '\n' ' ')
	# the target first, so it can stop (and reap) its own children
	kill -TERM "$TARGET_PID" 2>/dev/null || true
	for i in $(seq "$grace"); do
		kill -0 "$TARGET_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$TARGET_PID" 2>/dev/null || true
	wait "$TARGET_PID" 2>/dev/null || true
	# then whatever it left behind
	for p in $kids; do kill -TERM "$p" 2>/dev/null || true; done
	for i in $(seq 10); do
		local alive=0
		for p in $kids; do kill -0 "$p" 2>/dev/null && alive=1; done
		[[ $alive == 0 ]] && break
		sleep 0.1
	done
	for p in $kids; do kill -KILL "$p" 2>/dev/null || true; done
	TARGET_PID=""
}

# stop_client: SIGTERM to the load client at $CLIENT_PID, if one runs, and wait for it
stop_client() {
	[[ -n $CLIENT_PID ]] || return 0
	kill -TERM "$CLIENT_PID" 2>/dev/null || true
	wait "$CLIENT_PID" 2>/dev/null || true
	CLIENT_PID=""
}

# CPU ticks (utime+stime) of a process
proc_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# unmount and remove the scratch tmpfs at $TMPFS, if there is one
remove_tmpfs() {
	[[ -n ${TMPFS:-} ]] || return 0
	umount "$TMPFS" 2>/dev/null || true
	rmdir "$TMPFS" 2>/dev/null || true
}

teardown_net() {
	ip netns del "$NSA" 2>/dev/null || true
	ip netns del "$NSB" 2>/dev/null || true
}

# setup_net MTU: the namespaces and the veth pair, afresh
setup_net() {
	local mtu=$1 ns
	teardown_net
	ip netns add "$NSA"
	ip netns add "$NSB"
	for ns in "$NSA" "$NSB"; do
		# before the veth exists, so its ends never get IPv6 (no ND/MLD frames)
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
	done
	for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
	add_link "$IFACE" "$mtu"
}

# add_link NAME MTU: one more veth pair between the namespaces, both ends NAME
add_link() {
	local name=$1 mtu=$2 ns
	ip -n "$NSA" link add "$name" type veth peer name "$name" netns "$NSB"
	for ns in "$NSA" "$NSB"; do
		ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$name.disable_ipv6=1" 2>/dev/null || true
		ip -n "$ns" link set "$name" mtu "$mtu"
		ip -n "$ns" link set "$name" up
	done
}
