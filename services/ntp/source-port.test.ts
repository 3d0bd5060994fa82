import t from 'tap';
import { parseConfig } from '../../config/index.js';
import { Fsm } from '../../cluster/fsm.js';
import { MemoryStateLog } from '../../cluster/state-log.js';
import { createLogger } from '../../lib/log.js';
import { seededRandom } from '../../lib/random.js';
import { systemClock } from '../../lib/clock.js';
import { ephemeralPorts } from '../../test/support/ports.js';
import { canSendFromPortZero, sendFromPortZero } from '../../test/support/raw-udp.js';
import { startNtp, type NtpStatus } from './server.js';
import { encodeNtp } from './wire.js';

// A request from source port 0 (forged: no socket sends from it) names no port a reply can go to.
// Each was answered and counted as send_failed, the server's own failure. Now dropped at the
// listener: dropped.source-port-zero and a rate-limited debug line.

t.test('an NTP request from source port 0 is dropped and counted, never answered', async (t) => {
  if (!canSendFromPortZero(t, 'services/ntp/source-port.test')) return;
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const config = ephemeralPorts(parseConfig('node: { name: t, address: 127.0.0.1, stateDir: /tmp/unused-lanha-ntp, controlSocket: /tmp/unused.sock }\nntp: { listen: [127.0.0.1], localStratum: 10, stampCorrection: false, kernelStamps: off }\n'));
  const ntp = await startNtp({ config, log, clock: systemClock, random: seededRandom(1), state: new MemoryStateLog(new Fsm(), systemClock) });
  t.teardown(() => ntp.stop());
  const port = Number(ntp.status().listening[0]!.split(':').pop());
  const request = encodeNtp({
    leap: 0, version: 4, mode: 3, stratum: 0, poll: 6, precision: -20, rootDelay: 0, rootDispersion: 0, referenceId: 0,
    referenceTimestamp: { seconds: 0, fraction: 0 }, originTimestamp: { seconds: 0, fraction: 0 },
    receiveTimestamp: { seconds: 0, fraction: 0 }, transmitTimestamp: { seconds: 0x12345678, fraction: 0x9abcdef0 }, extensions: [], mac: null,
  });
  for (let i = 0; i < 3; i++) sendFromPortZero('127.0.0.9', '127.0.0.1', port, request);
  const counters = (): Record<string, number> => (ntp.status() as NtpStatus).counters;
  for (let i = 0; i < 200 && (counters()['requests'] ?? 0) < 3; i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 100));
  t.equal(counters()['requests'], 3, 'all three read');
  t.equal(counters()['dropped.source-port-zero'], 3, 'each one counted as dropped');
  t.equal(counters()['send_failed'] ?? 0, 0, 'none counted as a failed send of the server');
  t.equal(counters()['replies'] ?? 0, 0, 'none answered');
  t.ok(lines.some((l) => l['event'] === 'ntp.packet.dropped' && l['reason'] === 'source-port-zero' && l['peer'] === '127.0.0.9'), 'a debug line names the source');
});
