#!/bin/sh
# Replaces an agent bundle's certificate and key with new ones for the same cluster, signed by
# the federation CA, and refreshes its CA bundle, with the system OpenSSL. A running agent
# notices the change (or a SIGHUP) and uses them for its next handshake; its session goes on.
#
#   Certs/rotate-agent-cert.sh D B [--days N]
#
# D is the federation directory, B the agent bundle (tls.crt, tls.key, ca.crt, agent.json).
# Exits non-zero, changing nothing, if D's CA key does not match its CA certificate or B is not
# an agent bundle.
. "$(dirname "$0")/lib.sh"

[ $# -ge 2 ] || die "usage: $0 FEDERATION_DIR BUNDLE_DIR [--days N]"
D=$1
B=$2
shift 2
days_option 365 "$@"
need_file "$B/agent.json" "is $B an agent bundle (tetherctl join / certs issue)?"
cluster=$(json_string "$B/agent.json" cluster)
domain=$(json_string "$D/federation.json" trustDomain)
[ -n "$cluster" ] || die "$B/agent.json names no cluster"
[ "$(json_string "$B/agent.json" trustDomain)" = "$domain" ] || die "$B belongs to another federation than $D"
work_dir
check_ca "$D"
new_key "$WORK/tls.key"
sign_leaf "$WORK/tls.key" "/O=Tether/OU=$domain/CN=cluster:$cluster" "URI:spiffe://$domain/cluster/$cluster" "clientAuth" \
    "$WORK/ca-signing.crt" "$D/ca.key" "$DAYS" "$WORK/tls.crt"
check_pair "$WORK/tls.crt" "$WORK/tls.key"
openssl verify -CAfile "$D/ca.crt" "$WORK/tls.crt" >/dev/null 2>&1 || die "the new certificate does not verify against $D/ca.crt"
install_file "$D/ca.crt" "$B/ca.crt" 644
install_file "$WORK/tls.key" "$B/tls.key" 600
install_file "$WORK/tls.crt" "$B/tls.crt" 644
say "agent certificate for cluster $cluster replaced: $(openssl x509 -noout -serial -in "$B/tls.crt"), valid until $(openssl x509 -noout -enddate -in "$B/tls.crt" | cut -d= -f2)"
say "  bundle: $B (ca.crt refreshed from $D/ca.crt)"
