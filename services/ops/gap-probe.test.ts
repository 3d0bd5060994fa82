import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { startDaemon } from '../../bin/daemon.js';
import { freePort } from '../../test/support/ports.js';
import { GapProber } from './gap-probe.js';
import type { ProbeWindowResult } from './gap-window.js';

// The failover probes against real servers: a window opens while nothing answers on the target,
// the DNS, NTP and TFTP servers of a daemon start ~400 ms later, and each protocol's first answer
// (an SOA answer, an NTP server reply, a TFTP "file not found" ERROR) is taken, counted from the
// start; the probes stay within their rate; a protocol nobody serves reports no answer. The window
// is long (30 s): a daemon start on a loaded 2-core CI machine took more than 8 s.

t.setTimeout(120_000);

t.test('the first answer per protocol once the services come up', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-gap-probe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [dns, ntp, tftp, silent] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const results: ProbeWindowResult[] = [];
  const prober = new GapProber({
    node: 'lan-a', clock: systemClock, log: silentLogger, windowMs: 30_000, onResult: (r) => results.push(r),
    targets: { vip: 0x7f000001, from: 0x7f000001, dns: { port: dns, zone: 'rack.lan' }, ntp: { port: ntp }, tftp: { port: tftp } },
  });
  const start = systemClock.monotonicMs();
  t.ok(prober.start('transfer', start, 'VIP released here'));
  t.notOk(prober.start('transfer', start, 'again'), 'one window at a time');
  await new Promise((r) => setTimeout(r, 400));
  const config = parseConfig(`node: { name: lan-a, address: 127.0.0.1, stateDir: "${dir}/state", controlSocket: "${dir}/s.sock" }
dns: { port: ${dns}, zones: [{ name: rack.lan, records: ["ns A 127.0.0.1"] }] }
ntp: { port: ${ntp}, localStratum: 10 }
tftp: { port: ${tftp}, root: "${dir}" }
`);
  const daemon = await startDaemon(config, { log: silentLogger });
  t.teardown(() => daemon.stop());
  for (let i = 0; i < 300 && results.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(results.length, 1, 'the window closed once every protocol answered');
  const r = results[0]!;
  const byProtocol = Object.fromEntries(r.gaps.map((g) => [g.protocol, g]));
  for (const p of ['dns', 'ntp', 'tftp'] as const) {
    t.ok(byProtocol[p]!.seconds !== null && byProtocol[p]!.seconds >= 0.35, `${p} answered after the services came up: ${byProtocol[p]!.seconds} s`);
    t.ok(byProtocol[p]!.probes >= 2, `${p}: probes went out while nothing answered (${byProtocol[p]!.probes})`);
  }
  const elapsedS = (systemClock.monotonicMs() - start) / 1000;
  t.ok(byProtocol['dns']!.probes <= elapsedS * 20 + 2 && byProtocol['tftp']!.probes <= elapsedS * 10 + 2, 'within the probe rate (DNS 20/s, TFTP 10/s)');
  t.equal(byProtocol['vip']!.seconds, Math.min(byProtocol['dns']!.seconds!, byProtocol['ntp']!.seconds!, byProtocol['tftp']!.seconds!), 'vip: the first answer of any protocol');
  t.match(r, { trigger: 'transfer', from: 'lan-a', target: '127.0.0.1', since: 'VIP released here' });

  const none: ProbeWindowResult[] = [];
  const quiet = new GapProber({ node: 'lan-a', clock: systemClock, log: silentLogger, windowMs: 600, onResult: (x) => none.push(x), targets: { vip: 0x7f000001, from: 0x7f000001, ntp: { port: silent } } });
  quiet.start('election', systemClock.monotonicMs(), 'this node last heard the old leader');
  for (let i = 0; i < 30 && none.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.same(none[0]?.gaps.map((g) => g.seconds), [null, null], 'nobody serves NTP there: no answer, no number');
});
