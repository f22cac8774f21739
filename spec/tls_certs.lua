-- Certificates for the TLS specs, made at test time with the openssl CLI
-- into a temporary directory (EC P-256 keys: fast to make and to use).
--
--   ca.pem / ca.key            the trusted test CA
--   server.pem / server.key    localhost and 127.0.0.1, issued by the CA
--   bundle.pem                 server.pem and server.key in one file
--   other.pem / other.key      issued by the CA for other.example only
--   expired.pem / expired.key  localhost, issued by the CA, expired in 2020
--   rogue_ca.pem               a second CA nobody trusts
--   rogue.pem / rogue.key      localhost, issued by the rogue CA
--   client.pem / client.key    a client certificate (CN=cfuture client), by the CA
--   rogue_client.pem / .key    a client certificate by the rogue CA
local M = {}

local script = [=[
set -e
cd "$1"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 30 -subj "$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() { # name subject issuer san
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -out "$1.pem" \
    -days 30 -extfile "$1.ext" 2>/dev/null
}
ca ca "/CN=cfuture test CA"
ca rogue_ca "/CN=cfuture rogue CA"
leaf server "/CN=localhost" ca "DNS:localhost,IP:127.0.0.1"
leaf other "/CN=other.example" ca "DNS:other.example"
leaf rogue "/CN=localhost" rogue_ca "DNS:localhost,IP:127.0.0.1"
leaf client "/CN=cfuture client" ca "DNS:client.example"
leaf rogue_client "/CN=rogue client" rogue_ca "DNS:client.example"
cat server.pem server.key > bundle.pem
# expired: `openssl ca` takes explicit dates (x509 -req cannot in OpenSSL 3.0)
key expired.key
openssl req -new -key expired.key -out expired.csr -subj "/CN=localhost" 2>/dev/null
mkdir -p db && : > db/index.txt && echo 1000 > db/serial
cat > db/ca.cnf <<EOF
[ca]
default_ca = d
[d]
dir = db
database = db/index.txt
serial = db/serial
new_certs_dir = db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = p
copy_extensions = none
x509_extensions = x
[p]
commonName = supplied
[x]
basicConstraints = CA:FALSE
subjectAltName = DNS:localhost,IP:127.0.0.1
EOF
openssl ca -batch -config db/ca.cnf -in expired.csr -out expired.pem -notext \
  -startdate 20200101000000Z -enddate 20200201000000Z >/dev/null 2>&1
]=]

local dir
-- The directory with every file above (made once per process).
function M.dir()
  if dir then return dir end
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("env -u LD_PRELOAD mkdir -p " .. d))
  local sh = d .. "/make.sh"
  local f = assert(io.open(sh, "w"))
  f:write(script)
  f:close()
  local ok = os.execute("env -u LD_PRELOAD sh " .. sh .. " " .. d)
  assert(ok == true or ok == 0, "making the test certificates failed")
  dir = d
  return d
end

-- The path of one of them: certs.path("server.pem").
function M.path(name) return M.dir() .. "/" .. name end

-- Remove the directory (for an after-all hook).
function M.cleanup()
  if dir then os.execute("env -u LD_PRELOAD rm -rf " .. dir) end
  dir = nil
end

return M
