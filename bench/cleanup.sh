# Undo the benchmark workload on a node, so each tool's first apply starts fresh.
rm -rf /etc/gfsbench /etc/modules-load.d/gfsbench.conf
if grep -q '^# BEGIN gfsbench storage nodes$' /etc/hosts; then
  kept=$(sed '/^# BEGIN gfsbench storage nodes$/,/^# END gfsbench storage nodes$/d' /etc/hosts)
  printf '%s\n' "$kept" > /etc/hosts
fi
while iptables -D INPUT -j gfsbench 2>/dev/null; do :; done
iptables -F gfsbench 2>/dev/null
iptables -X gfsbench 2>/dev/null
exit 0
