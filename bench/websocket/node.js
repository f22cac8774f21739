// bench/websocket on Node with the `ws` package (npm install ws; run.sh does it).
//   node node.js server [PORT]          an echo server on 127.0.0.1; prints the port
//   node node.js client PORT N SIZE C   C connections share N round trips of SIZE-byte
//                                       binary messages; prints "<msgs/s> <seconds>
//                                       <client CPU microseconds per round trip>"
'use strict';
const WebSocket = require('ws');
const mode = process.argv[2];
if (mode === 'server') {
  const wss = new WebSocket.Server({ host: '127.0.0.1', port: Number(process.argv[3] || 0),
    perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 }, () => {
    process.stdout.write(wss.address().port + '\n');
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
} else if (mode === 'client') {
  const [port, n, size, c] = process.argv.slice(3).map(Number);
  const per = Math.floor(n / (c || 1));
  const msg = Buffer.alloc(size, 'x');
  let ready = 0, done = 0, t0, cpu0;
  const conns = [];
  for (let i = 0; i < (c || 1); i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    let left = per;
    conns.push(ws);
    ws.on('open', () => {
      if (++ready === conns.length) {
        t0 = process.hrtime.bigint();
        cpu0 = process.cpuUsage();
        for (const w of conns) w.send(msg, { binary: true });
      }
    });
    ws.on('message', (data) => {
      if (data.length !== size) throw new Error('short echo');
      if (--left > 0) return ws.send(msg, { binary: true });
      if (++done === conns.length) {
        const secs = Number(process.hrtime.bigint() - t0) / 1e9;
        const cpu = process.cpuUsage(cpu0);
        const us = (cpu.user + cpu.system) / (per * conns.length);
        process.stdout.write(`${(per * conns.length / secs).toFixed(0)} ${secs.toFixed(3)} ${us.toFixed(1)}\n`);
        for (const w of conns) w.close();
      }
    });
  }
} else {
  process.stderr.write('usage: node.js server [PORT] | client PORT N SIZE C\n');
  process.exit(2);
}
