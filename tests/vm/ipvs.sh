#!/bin/sh
# The LVS backends end to end, run inside a VM whose kernel has IPVS (Debian 12's; see
# agent/tests/ipvs_vm.rs): a director running vrrp-agent, two real servers (busybox httpd,
# the VIP on lo as in seed 003) and a client, each in a network namespace on one bridge.
# Prints `VM-RESULT PASS`, or `VM-RESULT FAIL why`.
#
# $1: the vrrp-agent binary; $2: its --lvs-backend, `ipvs` (IPVS runs both services) or
# `auto` (the XDP balancer runs the TCP service, IPVS the fwmark one).
AGENT=$1
BACKEND=$2
WORK=$(mktemp -d)
fail() {
    echo "VM-RESULT FAIL $*"
    echo "--- agent log"; cat "$WORK/agent.log" 2>/dev/null
    echo "--- ipvsadm"; ip netns exec dir ipvsadm -Ln 2>&1
    echo "--- status"; ip netns exec dir "$AGENT" status --socket vm-ipvs 2>&1
    echo "--- links"; ip -s link 2>&1 | head -60
    exit 1
}
ok() { echo "CHECK ok: $*"; }
# Polls `cmd` (a shell string) until it succeeds, for up to $2 seconds.
until_ok() {
    n=0
    while ! eval "$1" >/dev/null 2>&1; do
        n=$((n + 1))
        [ "$n" -ge $(($2 * 5)) ] && return 1
        sleep 0.2
    done
}

ip link add br0 type bridge && ip link set br0 up || fail "bridge"
host() { # name address
    ip netns add "$1"
    ip link add "v-$1" type veth peer name eth0 netns "$1"
    ip link set "v-$1" master br0 up
    ip -n "$1" addr add "$2/24" dev eth0
    ip -n "$1" link set eth0 up
    ip -n "$1" link set lo up
}
host dir 10.0.0.2
host rs1 10.0.0.11
host rs2 10.0.0.12
host cl 10.0.0.50
# What the director's XDP program sends back out (XDP_TX: ARP replies, balanced frames)
# reaches its veth peer in native mode only when the peer has an XDP program too: a pass
# program, assembled here (llvm-mc is LLVM 22's, which builds the agent's eBPF).
printf '\t.section xdp,"ax",@progbits\n\t.globl xdp_pass\n\t.type xdp_pass,@function\nxdp_pass:\n\tr0 = 2\n\texit\n.Lend:\n\t.size xdp_pass, .Lend-xdp_pass\n\t.section license,"aw",@progbits\n\t.asciz "GPL"\n' > "$WORK/pass.s"
/usr/lib/llvm-22/bin/llvm-mc -triple bpfel -filetype=obj "$WORK/pass.s" -o "$WORK/pass.o" &&
    ip link set dev v-dir xdpdrv obj "$WORK/pass.o" sec xdp || fail "the pass program on v-dir"
# The client sends complete checksums: veth leaves them partial, and a frame the XDP balancer
# forwards loses that mark (as in the LVS lab).
ip netns exec cl ethtool -K eth0 tx off >/dev/null || fail "ethtool on the client"
for rs in rs1 rs2; do
    ip -n $rs addr add 10.0.0.100/32 dev lo
    ip netns exec $rs sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    mkdir -p "$WORK/$rs"
    echo "page of $rs" > "$WORK/$rs/index.html"
done
serve() { # real server, port (its pid in $WORK/NAME-PORT.pid)
    ip netns exec "$1" busybox httpd -f -p "$2" -h "$WORK/$1" &
    echo $! > "$WORK/$1-$2.pid"
    until_ok "ip netns exec $1 curl -s -o /dev/null http://127.0.0.1:$2/" 10
}
for rs in rs1 rs2; do serve $rs 80 && serve $rs 8080 || fail "httpd on $rs"; done

# Packets to the VIP's port 8080 are marked 7: the fwmark service takes them.
ip netns exec dir nft -f - <<'NFT' || fail "nft"
table ip lvs {
    chain pre {
        type filter hook prerouting priority mangle;
        ip daddr 10.0.0.100 tcp dport 8080 meta mark set 7
    }
}
NFT

cat > "$WORK/keepalived.conf" <<'CONF'
global_defs {
    lvs_timeouts tcp 1000 tcpfin 60 udp 200
    lvs_sync_daemon eth0 VI_1
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.0.0.100/24
    }
}
virtual_server 10.0.0.100 80 {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 10.0.0.11 80 {
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
    real_server 10.0.0.12 80 {
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
}
virtual_server fwmark 7 {
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    # keepalived clears a DR server's port under a mark (IPVS has it as :0); its checker
    # connects to the port written.
    real_server 10.0.0.11 8080 {
        weight 2
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
CONF
ip netns exec dir "$AGENT" -f "$WORK/keepalived.conf" --dont-fork --log-console --lvs-backend "$BACKEND" \
    --pid "$WORK/agent.pid" --socket vm-ipvs > "$WORK/agent.log" 2>&1 &
AGENT_PID=$!

until_ok "ip netns exec dir ipvsadm -Ln | grep -q 'FWM  7 wrr'" 30 || fail "the fwmark service is not in IPVS"
ok "FWM 7 entered"
# Whether the TCP service's server $1 is in its pool: in IPVS, or (XDP) as the status says.
in_pool() {
    if [ "$BACKEND" = ipvs ]; then
        ip netns exec dir ipvsadm -Ln | grep -A3 'TCP  10.0.0.100:80 rr' | grep -q "$1:80"
    else
        ip netns exec dir "$AGENT" status --socket vm-ipvs | grep -qE "$1:80 DR weight [0-9]+: alive, in the schedule"
    fi
}
until_ok "in_pool 10.0.0.12" 30 || fail "the TCP service's servers are not in the pool"
if [ "$BACKEND" = ipvs ]; then
    ok "TCP 10.0.0.100:80 entered in IPVS with its servers"
else
    grep -q "VS \[10.0.0.100\]:tcp:80 served by XDP" "$WORK/agent.log" || fail "the TCP service is not served by XDP"
    ip netns exec dir ipvsadm -Ln | grep -q "TCP  10.0.0.100:80" && fail "the TCP service is in IPVS too"
    ok "TCP 10.0.0.100:80 served by XDP, FWM 7 by IPVS, in one run"
fi
until_ok "ip -n dir addr show dev eth0 | grep -q 10.0.0.100" 30 || fail "the VIP is not on the director"
ok "the VIP is held"
ip netns exec dir ipvsadm -L --timeout | grep -q "(tcp tcpfin udp): 1000 60 200" ||
    fail "lvs_timeouts not in IPVS: $(ip netns exec dir ipvsadm -L --timeout)"
ok "lvs_timeouts set in IPVS"
# The sync daemon follows VI_1, master here (its sync id the VRID).
until_ok "ip netns exec dir ipvsadm -L --daemon | grep -q 'master sync daemon (mcast=eth0, syncid=51,'" 20 ||
    fail "no master sync daemon: $(ip netns exec dir ipvsadm -L --daemon)"
ip netns exec dir ipvsadm -L --daemon | grep -q backup && fail "a backup sync daemon runs beside the master"
ok "lvs_sync_daemon: $(ip netns exec dir ipvsadm -L --daemon)"

get() { # port
    ip netns exec cl curl -s --max-time 3 "http://10.0.0.100:$1/"
}
pages() { # port, requests
    i=0; out=""
    while [ $i -lt "$2" ]; do out="$out$(get "$1");"; i=$((i + 1)); done
    echo "$out"
}
p=$(pages 80 6)
case "$p" in *"page of rs1"*) ;; *) fail "rs1 never answered: $p" ;; esac
case "$p" in *"page of rs2"*) ;; *) fail "rs2 never answered: $p" ;; esac
ok "requests spread over both real servers: $p"

# rs2's server stops: its checker takes it out, every request goes to rs1.
kill "$(cat "$WORK/rs2-80.pid")"
until_ok "! in_pool 10.0.0.12" 20 || fail "rs2 was not taken out"
p=$(pages 80 4)
case "$p" in *"page of rs2"*|*";;"*) fail "requests did not all go to rs1: $p" ;; esac
ok "rs2 down: taken out, requests go to rs1: $p"
grep -q "Removing service \[10.0.0.12\]:tcp:80 from VS \[10.0.0.100\]:tcp:80" "$WORK/agent.log" ||
    fail "no keepalived line for the removal"
ok "keepalived's Removing line"

serve rs2 80 || fail "httpd on rs2 again"
until_ok "in_pool 10.0.0.12" 20 || fail "rs2 did not come back"
ok "rs2 back"

p=$(get 8080)
[ "$p" = "page of rs1" ] || fail "the fwmark service did not answer: $p"
ok "the fwmark service answers"

ip netns exec dir "$AGENT" status --socket vm-ipvs > "$WORK/status" 2>&1 || fail "status: $(cat "$WORK/status")"
grep -q "VS FWM 7 (wrr, by IPVS)" "$WORK/status" || fail "status does not say IPVS: $(cat "$WORK/status")"
ok "status: $(grep 'by IPVS' "$WORK/status" | head -2 | tr '\n' ';')"

# A reload that drops the fwmark service and weighs rs1 3: the TCP service stays (its
# connections go on), the mark's goes.
sed -i -e '/^virtual_server fwmark 7/,$d' -e '0,/real_server 10.0.0.11 80 {/s//real_server 10.0.0.11 80 {\n        weight 3/' "$WORK/keepalived.conf"
kill -HUP $AGENT_PID
until_ok "! ip netns exec dir ipvsadm -Ln | grep -q FWM" 20 || fail "the reload left the fwmark service"
if [ "$BACKEND" = ipvs ]; then
    until_ok "ip netns exec dir ipvsadm -Ln | grep -E '10.0.0.11:80 +Route +3 '" 20 || fail "the reload did not weigh rs1 3"
else
    until_ok "ip netns exec dir \"$AGENT\" status --socket vm-ipvs | grep -q '10.0.0.11:80 DR weight 3'" 20 || fail "the reload did not weigh rs1 3"
fi
ok "reloaded: the fwmark service is gone, rs1 weighs 3"

kill -TERM $AGENT_PID
wait $AGENT_PID
[ -z "$(ip netns exec dir ipvsadm -Ln | grep -E 'TCP|FWM')" ] || fail "services left in IPVS after stop"
[ -z "$(ip netns exec dir ipvsadm -L --daemon)" ] || fail "a sync daemon left after stop"
ok "stopped: its services are out of IPVS"
grep -E "XDP|IPVS" "$WORK/agent.log" | sed 's/^/INFO /'
echo "VM-RESULT PASS"
