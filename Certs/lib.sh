# Shared by the rotation scripts in this folder: sourced, not run. Needs the OpenSSL CLI
# (openssl 3) and POSIX tools only. Every file is replaced by a rename within its own
# directory, so a process watching it (tether-hub, tether-agent) sees the old file or the new
# one, never half of one.

set -eu
umask 077

die() {
    echo "error: $*" >&2
    exit 1
}

say() {
    echo "$*"
}

# days_option DEFAULT ARGS...: sets DAYS from `--days N` (the only option), or DEFAULT.
days_option() {
    DAYS=$1
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --days) DAYS=${2:?--days needs a number}; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    case "$DAYS" in
        ''|*[!0-9]*) die "--days must be a whole number of days, not '$DAYS'" ;;
    esac
}

need_file() {
    [ -f "$1" ] || die "$1 does not exist${2:+; $2}"
}

# work_dir: a private scratch folder, removed on exit.
work_dir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/tether-certs.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
}

# public_key FILE: the public key of a certificate or of a private key, as PEM.
cert_public_key() { openssl x509 -noout -pubkey -in "$1" 2>/dev/null; }
key_public_key() { openssl pkey -pubout -in "$1" 2>/dev/null; }

# check_pair CERT KEY: refuse to go on when KEY is not CERT's private key.
check_pair() {
    cert_key=$(cert_public_key "$1") || die "$1 is not a PEM certificate"
    private_key=$(key_public_key "$2") || die "$2 is not a PEM private key"
    [ -n "$cert_key" ] && [ "$cert_key" = "$private_key" ] || die "$2 is not the private key of $1; refusing to run"
}

# install_file SRC DEST MODE: copy SRC next to DEST, set MODE, rename over DEST.
install_file() {
    staged="$2.tmp-$$"
    cp "$1" "$staged"
    chmod "$3" "$staged"
    mv -f "$staged" "$2"
}

# json_string FILE KEY: a top-level string value of a (pretty-printed) JSON file.
json_string() {
    tr -d '\n' < "$1" | sed -n "s/.*\"$2\" *: *\"\([^\"]*\)\".*/\1/p"
}

# hub_hosts FILE: the hubHosts array of federation.json, one per line.
hub_hosts() {
    tr -d '\n' < "$1" | sed -n 's/.*"hubHosts" *: *\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | sed 's/[" ]//g' | sed '/^$/d'
}

# first_certificate BUNDLE OUT: the first certificate of a PEM bundle (the signing CA).
first_certificate() {
    openssl x509 -in "$1" -out "$2" 2>/dev/null || die "$1 holds no PEM certificate"
}

new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null || die "cannot make a P-256 key"
}

# sign_leaf KEY SUBJECT SAN EKU CA_CERT CA_KEY DAYS OUT: a leaf certificate for KEY.
sign_leaf() {
    cat > "$WORK/leaf.cnf" <<CONF
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $4
subjectAltName = $3
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CONF
    openssl req -new -key "$1" -subj "$2" -out "$WORK/leaf.csr" 2>/dev/null || die "cannot make a certificate request"
    openssl x509 -req -in "$WORK/leaf.csr" -CA "$5" -CAkey "$6" -set_serial "0x$(openssl rand -hex 16)" \
        -days "$7" -sha256 -extfile "$WORK/leaf.cnf" -extensions leaf -out "$8" 2>/dev/null || die "cannot sign the certificate"
}

# check_ca D: D's signing CA (first in ca.crt) must match ca.key.
check_ca() {
    need_file "$1/ca.crt" "is $1 a federation directory (tetherctl init)?"
    need_file "$1/ca.key" "the CA key is needed to sign"
    first_certificate "$1/ca.crt" "$WORK/ca-signing.crt"
    check_pair "$WORK/ca-signing.crt" "$1/ca.key"
}

# issue_hub D DAYS: a new hub key and certificate from D's signing CA, installed key first.
issue_hub() {
    domain=$(json_string "$1/federation.json" trustDomain)
    [ -n "$domain" ] || die "$1/federation.json names no trustDomain"
    san="URI:spiffe://$domain/hub"
    for host in $(hub_hosts "$1/federation.json"); do
        case "$host" in
            *:*|[0-9]*.[0-9]*.[0-9]*.[0-9]*) san="$san,IP:$host" ;;
            *) san="$san,DNS:$host" ;;
        esac
    done
    new_key "$WORK/hub.key"
    sign_leaf "$WORK/hub.key" "/O=Tether/OU=$domain/CN=tether-hub" "$san" "serverAuth, clientAuth" \
        "$WORK/ca-signing.crt" "$1/ca.key" "$2" "$WORK/hub.crt"
    check_pair "$WORK/hub.crt" "$WORK/hub.key"
    openssl verify -CAfile "$1/ca.crt" "$WORK/hub.crt" >/dev/null 2>&1 || die "the new hub certificate does not verify against $1/ca.crt"
    install_file "$WORK/hub.key" "$1/hub.key" 600
    install_file "$WORK/hub.crt" "$1/hub.crt" 644
    say "hub certificate replaced: $(openssl x509 -noout -serial -in "$1/hub.crt"), valid until $(openssl x509 -noout -enddate -in "$1/hub.crt" | cut -d= -f2)"
    say "  names: $san"
}

# issue_admin D DAYS: a new admin client certificate, and D/kubeconfig rewritten around it.
issue_admin() {
    domain=$(json_string "$1/federation.json" trustDomain)
    new_key "$WORK/admin.key"
    sign_leaf "$WORK/admin.key" "/O=Tether/OU=$domain/CN=admin" "URI:spiffe://$domain/user/admin" "clientAuth" \
        "$WORK/ca-signing.crt" "$1/ca.key" "$2" "$WORK/admin.crt"
    install_file "$WORK/admin.key" "$1/admin.key" 600
    install_file "$WORK/admin.crt" "$1/admin.crt" 644
    say "admin certificate replaced: $(openssl x509 -noout -serial -in "$1/admin.crt")"
    write_kubeconfig "$1"
}

# write_kubeconfig D: D/kubeconfig for the server it names now, with D's CA bundle and admin pair.
write_kubeconfig() {
    server=$(sed -n 's/^ *server: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$1/kubeconfig" 2>/dev/null | head -n 1)
    [ -n "$server" ] || server="https://127.0.0.1:6443"
    b64() { base64 < "$1" | tr -d '\n'; }
    cat > "$WORK/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: federation
  cluster:
    server: "$server"
    certificate-authority-data: $(b64 "$1/ca.crt")
users:
- name: federation
  user:
    client-certificate-data: $(b64 "$1/admin.crt")
    client-key-data: $(b64 "$1/admin.key")
contexts:
- name: federation
  context: {cluster: federation, user: federation}
current-context: federation
YAML
    install_file "$WORK/kubeconfig" "$1/kubeconfig" 600
    say "kubeconfig rewritten: $1/kubeconfig (server $server)"
}
