// bench/http/client: N small GETs over keep-alive with Node, C at a time.
//   node node.js http|fetch URL [N = 10000] [C = 1]  ->  "node-<mode> <C> <requests/s>"
const http = require('http');
const [mode, url, nArg, cArg] = process.argv.slice(2);
const N = +(nArg || 10000), C = +(cArg || 1);
const agent = new http.Agent({ keepAlive: true, maxSockets: C });
function viaHttp() {
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      let n = 0;
      res.on('data', (d) => { n += d.length; });
      res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error('status ' + res.statusCode))));
    }).on('error', reject);
  });
}
async function viaFetch() {
  const r = await fetch(url);
  await r.text();
  if (r.status !== 200) throw new Error('status ' + r.status);
}
const one = mode === 'fetch' ? viaFetch : viaHttp;
async function worker(count) { for (let i = 0; i < count; i++) await one(); }
(async () => {
  await worker(10);
  const t0 = process.hrtime.bigint();
  const ws = [];
  for (let i = 0; i < C; i++) ws.push(worker(Math.floor(N / C) + (i < N % C ? 1 : 0)));
  await Promise.all(ws);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`node-${mode} ${C} ${Math.round(N / s)}`);
  agent.destroy();
  process.exit(0);
})();
