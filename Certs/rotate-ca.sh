#!/bin/sh
# Rolls the federation CA over with the system OpenSSL, with an overlap during which both CAs
# are trusted, as `tetherctl certs rotate-ca` does.
#
#   Certs/rotate-ca.sh D [--days N]     start: a new CA signs; ca.crt trusts the new and the old;
#                                       the hub and admin certificates (and kubeconfig) are re-issued.
#                                       The hub sends the bundle to agents, which renew onto the new CA.
#   Certs/rotate-ca.sh D --finish       end: ca.crt keeps only the new CA; the old CA key is deleted.
#
# Exits non-zero, changing nothing, if D's CA key does not match its CA certificate, if a
# rollover is already under way (start), or none is (finish), or if the hub's or admin's
# certificate is still from the old CA (finish).
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || die "usage: $0 FEDERATION_DIR [--days N] [--finish]"
D=$1
shift
DAYS=3650
FINISH=no
while [ $# -gt 0 ]; do
    case "$1" in
        --days) DAYS=${2:?--days needs a number}; shift 2 ;;
        --finish) FINISH=yes; shift ;;
        *) die "unknown option $1" ;;
    esac
done
need_file "$D/federation.json" "is $D a federation directory (tetherctl init)?"
work_dir
check_ca "$D"
domain=$(json_string "$D/federation.json" trustDomain)
serial_of() { openssl x509 -noout -serial -in "$1" | cut -d= -f2; }

if [ "$FINISH" = yes ]; then
    [ -f "$D/ca-rotation.json" ] || die "no CA rollover is under way in $D; start one with $0 $D"
    signing_subject=$(openssl x509 -noout -subject -in "$WORK/ca-signing.crt")
    for name in hub admin; do
        issuer=$(openssl x509 -noout -issuer -in "$D/$name.crt" | sed 's/^issuer/subject/')
        [ "$issuer" = "$signing_subject" ] || die "the $name certificate is still from the old CA; renew it first"
    done
    install_file "$WORK/ca-signing.crt" "$D/ca.crt" 644
    rm -f "$D/ca.previous.key" "$D/ca-rotation.json"
    write_kubeconfig "$D"
    say "CA rollover finished: $D/ca.crt trusts only $(serial_of "$D/ca.crt")"
    exit 0
fi

[ ! -f "$D/ca-rotation.json" ] || die "a CA rollover is already under way in $D; finish it with $0 $D --finish"
new_key "$WORK/ca.key"
openssl req -x509 -new -key "$WORK/ca.key" -subj "/O=Tether/CN=Tether CA $domain $(date +%s)-$(openssl rand -hex 2)" -days "$DAYS" -sha256 \
    -set_serial "0x$(openssl rand -hex 16)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$WORK/ca.crt" 2>/dev/null || die "cannot make the new CA"
check_pair "$WORK/ca.crt" "$WORK/ca.key"
old_serials=""
openssl crl2pkcs7 -nocrl -certfile "$D/ca.crt" | openssl pkcs7 -print_certs -out "$WORK/old-bundle.pem" 2>/dev/null
for serial in $(openssl crl2pkcs7 -nocrl -certfile "$D/ca.crt" | openssl pkcs7 -print_certs -text 2>/dev/null \
        | sed -n '/Serial Number:/{n;s/[ :]//g;p}' | tr 'a-f' 'A-F'); do
    old_serials="$old_serials${old_serials:+, }\"$serial\""
done
cat "$WORK/ca.crt" "$D/ca.crt" > "$WORK/bundle.pem"
install_file "$D/ca.key" "$D/ca.previous.key" 600
cat > "$WORK/rotation.json" <<JSON
{
  "retiringSerials" : [$old_serials],
  "signingSerial" : "$(serial_of "$WORK/ca.crt")",
  "startedAt" : "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
JSON
install_file "$WORK/rotation.json" "$D/ca-rotation.json" 644
# The bundle that trusts both goes first, then the new signing key.
install_file "$WORK/bundle.pem" "$D/ca.crt" 644
install_file "$WORK/ca.key" "$D/ca.key" 600
cp "$WORK/ca.crt" "$WORK/ca-signing.crt"
say "new CA: $(openssl x509 -noout -subject -in "$WORK/ca.crt") ($(serial_of "$WORK/ca.crt")), signing from now on"
say "still trusted until --finish: $old_serials"
issue_hub "$D" 365
issue_admin "$D" 365
say "next: once every agent has renewed onto the new CA, $0 $D --finish"
