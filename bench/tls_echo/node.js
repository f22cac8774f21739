// bench/tls_echo on Node: a tls echo server. `node node.js CERT KEY [PORT]`
// (or TLS_CERT / TLS_KEY in the environment). Binds 127.0.0.1 (PORT, default
// 0 = any free port), prints the bound port, pipes each socket to itself (so
// the client's close_notify ends it with Node's own), and serves until
// killed. Node's defaults otherwise (TLS 1.2-1.3, session tickets on).
'use strict';
const fs = require('fs');
const tls = require('tls');
const cert = process.argv[2] || process.env.TLS_CERT;
const key = process.argv[3] || process.env.TLS_KEY;
const port = Number(process.argv[4] || 0);
if (!cert || !key) {
  process.stderr.write('usage: node node.js CERT KEY [PORT]\n');
  process.exit(2);
}
const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), noDelay: true }, (sock) => {
  sock.on('error', () => sock.destroy());
  sock.pipe(sock);
});
server.on('tlsClientError', () => {});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(server.address().port + '\n');
});
