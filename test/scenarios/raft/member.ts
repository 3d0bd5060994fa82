// One cluster member as a child process for crash tests and the benchmark: it opens the durable
// StateLog from a real lanha config exactly as the daemon does (openRaftState: WAL + transport),
// then takes commands on stdin, one per line:
//   P <n>     propose lease.grant for ip n; answers "ACK <n> <index>" or "ERR <n> <reason>"
//   L         answers "LEASES <json array of leased ips>"
//   S         answers "STATUS <json>"
// and prints "LEADER <term>" whenever it becomes leader (with a valid lease).
// With a second argument it also serves HTTP on 127.0.0.1:<port> for the benchmark:
//   POST /put {"key","value"}  -> 200 once committed and applied (a dns.set), 503 when not leader
//   GET /keys                  -> the keys applied here
import { createInterface } from 'node:readline';
import { createServer } from 'node:http';
import { loadConfig } from '../../../config/index.js';
import { createLogger } from '../../../lib/log.js';
import { systemClock } from '../../../lib/clock.js';
import { openRaftState } from '../../../cluster/open-state.js';

const config = loadConfig(process.argv[2]!);
const log = createLogger({ level: (process.env['LANHA_MEMBER_LOG'] as 'info' | undefined) ?? 'warn', node: config.node.name });
const state = await openRaftState(config, log, systemClock);
const out = (line: string): void => { process.stdout.write(line + '\n'); };
out(`READY ${config.node.name}`);
let lastLeaderTerm = -1;
setInterval(() => {
  if (state.isLeader() && state.host.node.term !== lastLeaderTerm) {
    lastLeaderTerm = state.host.node.term;
    out(`LEADER ${lastLeaderTerm}`);
  }
}, 5).unref();
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, arg] = line.trim().split(' ');
  if (cmd === 'P') {
    const ip = Number(arg);
    state.propose({ type: 'lease.grant', ip, mac: `02:00:${[24, 16, 8, 0].map((s) => ((ip >>> s) & 0xff).toString(16).padStart(2, '0')).join(':')}`, subnet: 'bench', leaseMs: 3_600_000, hostname: 'h'.repeat(8) })
      .then((e) => out(`ACK ${ip} ${e.index}`), (err: Error) => out(`ERR ${ip} ${err.message.replace(/\n/g, ' ')}`));
  } else if (cmd === 'L') {
    out(`LEASES ${JSON.stringify([...state.fsm.leases()].map((l) => l.ip))}`);
  } else if (cmd === 'S') {
    // status() gives the state hash only once worked out in slices for the current state (null
    // right after a change or a start); the tests compare the state itself, so the hash of now.
    const st = state.status();
    out(`STATUS ${JSON.stringify({ ...st, stateHash: st.stateHash ?? state.fsm.hash() })}`);
  }
});
rl.on('close', () => { void state.close().then(() => process.exit(0)); });
process.on('SIGTERM', () => { void state.close().then(() => process.exit(0)); });

const httpPort = process.argv[3];
if (httpPort !== undefined) {
  const server = createServer((req, res) => {
    const reply = (code: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method === 'GET' && req.url === '/keys') {
      reply(200, [...state.fsm.records()].map((r) => r.name));
      return;
    }
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); if (body.length > 4096) req.destroy(); });
    req.on('end', () => {
      let kv: { key?: unknown; value?: unknown };
      try { kv = JSON.parse(body) as typeof kv; } catch { reply(400, { error: 'not JSON' }); return; }
      if (typeof kv.key !== 'string' || typeof kv.value !== 'string') { reply(400, { error: 'key and value are strings' }); return; }
      state.propose({ type: 'dns.set', name: kv.key, rrtype: 'TXT', ttl: 60, data: kv.value })
        .then((e) => reply(200, { index: e.index }), (err: Error) => reply(503, { error: err.message }));
    });
  });
  server.keepAliveTimeout = 30_000;
  server.listen(Number(httpPort), '127.0.0.1', () => out(`HTTP ${httpPort}`));
}
