#!/bin/sh
# Test certificates, made fresh by the openssl CLI in the folder given:
#   ca.pem/ca.key           a throw-away certificate authority
#   server.pem/server.key   localhost and 127.0.0.1, signed by the CA
#   rotated.pem/rotated.key the same names, another subject (CN=rotated), for reloads
#   other.pem/other.key     an unrelated self-signed pair (for mismatches)
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=hailuo-hook test CA" -keyout ca.key -out ca.pem 2>/dev/null
for name in server rotated; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=other" -keyout other.key -out other.pem 2>/dev/null
chmod 644 ca.pem server.pem rotated.pem other.pem
