import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../config/index.js';
import { Fsm } from '../../cluster/fsm.js';
import { MemoryStateLog } from '../../cluster/state-log.js';
import { createLogger } from '../../lib/log.js';
import { cryptoRandom } from '../../lib/random.js';
import { systemClock } from '../../lib/clock.js';
import { ephemeralPorts } from '../../test/support/ports.js';
import { canSendFromPortZero, sendFromPortZero } from '../../test/support/raw-udp.js';
import { DnsServer } from './server.js';
import { CLASS_IN, T, emptyMessage, encodeMessage } from './wire.js';

// A query from source port 0 (forged: no socket sends from it) names no port a reply can go to. Each
// was answered, the send failed and dns.udp.send_failed counted it: the server's own failure counter
// moved by anyone with a raw socket. Now dropped before it is read, on the daemon's path and in a UDP
// worker process alike.

async function eventually(check: () => boolean, timeoutMs = 20_000): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) if (check()) return true;
  return check();
}

for (const workers of [0, 1]) {
  t.test(`a query from source port 0 is dropped and counted, never answered (${workers === 0 ? 'the daemon reads' : 'a UDP worker reads'})`, async (t) => {
    if (!canSendFromPortZero(t, 'services/dns/source-port.test')) return;
    const dir = mkdtempSync(join(tmpdir(), 'lanha-dns-port0-'));
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({ level: 'debug', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
    const config = ephemeralPorts(parseConfig(`
node: { name: unit, role: server, address: 127.0.0.1, stateDir: ${dir}/state, controlSocket: ${dir}/s.sock }
dns: { listen: [127.0.0.1], workers: ${workers}, zones: [{ name: lan, records: ["www A 10.0.0.1"] }] }
`));
    const dns = new DnsServer({ config, log, clock: systemClock, random: cryptoRandom, state: new MemoryStateLog(new Fsm(), systemClock) });
    t.teardown(async () => { await dns.stop(); rmSync(dir, { recursive: true, force: true }); });
    await dns.start();
    const st = (): { workers: { configured: number; running: number }; daemonReads: string[]; counters: Record<string, number>; listening: string[] } => dns.status() as never;
    if (workers > 0) t.ok(await eventually(() => st().workers.running === 1 && st().daemonReads.length === 0, 60_000), 'the worker reads the socket');
    const port = Number(/:(\d+)$/.exec(st().listening[0]!)![1]);
    const m = emptyMessage(7);
    m.questions = [{ name: 'www.lan', type: T.A, class: CLASS_IN }];
    const query = encodeMessage(m).bytes;
    for (let i = 0; i < 3; i++) sendFromPortZero('127.0.0.9', '127.0.0.1', port, query);
    const seen = (): number => (st().counters['dns.dropped.source-port-zero'] ?? 0) + (st().counters['dns.udp.send_failed'] ?? 0);
    await eventually(() => seen() >= 3, 10_000);
    t.equal(st().counters['dns.dropped.source-port-zero'], 3, 'each one counted as dropped');
    t.equal(st().counters['dns.udp.send_failed'], undefined, 'none counted as a failed send of the server');
    if (workers === 0) t.ok(lines.some((l) => l['event'] === 'dns.bad_query' && l['reason'] === 'source-port-zero' && l['source'] === '127.0.0.9:0'), 'a debug line names the source');
  });
}
