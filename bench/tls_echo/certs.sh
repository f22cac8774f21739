#!/bin/sh
# certs.sh DIR [ec|rsa] — a throwaway test CA and a server certificate for
# localhost / 127.0.0.1, made with the openssl CLI into DIR:
#   DIR/ca.pem       the CA certificate (the client trusts only this)
#   DIR/server.pem   the server certificate (SAN DNS:localhost, IP:127.0.0.1)
#   DIR/server.key   its private key
# Keys are EC P-256 (ECDSA signatures; the default) or RSA 2048 ("rsa").
# Valid for 7 days; nothing here is a secret worth keeping.
set -eu
dir=${1:?usage: certs.sh DIR [ec|rsa]}
kind=${2:-ec}
mkdir -p "$dir"
cd "$dir"
umask 077
genkey() {
  case $kind in
    ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" ;;
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" ;;
    *) echo "certs.sh: key kind must be ec or rsa, not '$kind'" >&2; exit 2 ;;
  esac
}
genkey ca.key 2>/dev/null
genkey server.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 7 -subj "/CN=cfuture bench test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem 2>/dev/null
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr 2>/dev/null
cat > server.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 7 \
  -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
openssl verify -CAfile ca.pem server.pem >/dev/null
chmod 644 ca.pem server.pem
echo "$kind" > kind
