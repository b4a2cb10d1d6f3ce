#!/bin/sh
# Replaces the hub's certificate and key in a federation directory with new ones signed by the
# federation CA, with the system OpenSSL. The running hub notices the change (or a SIGHUP) and
# uses the new pair for new handshakes; established agent sessions are not touched.
#
#   Certs/rotate-hub-cert.sh D [--days N]
#
# Exits non-zero, changing nothing, if D's CA key does not match its CA certificate.
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || die "usage: $0 FEDERATION_DIR [--days N]"
D=$1
shift
days_option 365 "$@"
need_file "$D/federation.json" "is $D a federation directory (tetherctl init)?"
work_dir
check_ca "$D"
issue_hub "$D" "$DAYS"
