import t from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { withLab } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { UbootConsole, ubootArgs, ubootUnavailable, requireQemu } from '../support/qemu.js';
import { longestGapMs, monotonicNowMs, startProber } from '../support/prober.js';
import { overlaps, vipCluster, VIP, withVipCluster, type VipNode } from './vip-lab.js';
import type { FailoverResult } from '../../services/vip/failover.js';

// A planned failover must not break a boot in progress. U-Boot (qemu-system-aarch64, DEFAULT
// environment: netretry unset, so one TFTP ERROR fails the boot) downloads an image from the VIP
// through a link shaped with tc tbf so the download lasts seconds; `lanctl failover` runs on the
// holder mid-download. Proven: the command says it waits for that transfer (drain), the download
// finishes with the right crc32 and no error, only then does the VIP move (no sample with two
// holders), U-Boot's next tftpboot is served by the new holder, and `lanctl failover` prints the
// gap with its parts (how close it is to a prober's measure is bench:vip's
// vip.failover.printed_error_ms, a timing figure).

// 2 MiB through 2 mbit: about 8.5 s, long enough that `lanctl failover` (a node process started on a
// loaded machine, then the catch-up wait) reaches its drain while the download still runs.
const IMAGE_BYTES = 2 * 1024 * 1024;
const PROBE_EVERY_MS = 20;

t.setTimeout(600_000);

t.test('planned failover during a U-Boot download: drained, not broken; the printed gap is reported', async (t) => {
  if (!requireQemu(t, 'vip drain test', ubootUnavailable, ['tc', 'curl'])) return;
  await withLab(async (lab) => {
    // A longer election timeout than the default keeps leadership still while qemu and the
    // download load the machine; drain does not depend on it.
    const c = await vipCluster(lab, 'fast', { vipExtra: 'drainTimeout: 90s', electionTimeout: '1500ms' });
    await withVipCluster(t, lab, c, async () => {
      const image = randomBytes(IMAGE_BYTES);
      for (const s of c.servers) writeFileSync(join(c.dir, `tftp-${s.name}`, 'Image'), image);
      const want = (crc32(image) >>> 0).toString(16).padStart(8, '0');
      const probeHost = await lab.addHost('probe', '10.66.0.11/24');
      // Host 3 is the client (a, b, w, cli): shape what the switch sends it, so the download lasts seconds.
      const shaped = await lab.execSwitch('tc', ['qdisc', 'add', 'dev', lab.bridgePort(3), 'root', 'tbf', 'rate', '2mbit', 'burst', '4kb', 'latency', '200ms']);
      t.equal(shaped.code, 0, `tc tbf on the client's port: ${shaped.stderr}`);

      await Promise.all([...c.servers, c.witness].map((n) => c.start(n)));
      await c.waitSteady(1000, 60_000);

      const qemu = c.client.spawn('qemu-system-aarch64', ubootArgs({ netdev: 'user,id=n0', mac: '52:54:00:97:03:03' }), { stdio: ['pipe', 'pipe', 'pipe'] });
      const console = new UbootConsole(qemu);
      try {
        await console.prompt(90_000);
        // What DHCP would have set; netretry stays unset (the default environment).
        await console.run(`setenv ipaddr 10.0.2.15; setenv netmask 255.255.255.0; setenv gatewayip 10.0.2.2; setenv serverip ${VIP}; printenv netretry`);
        const prober = startProber(lab, probeHost, { target: VIP, everyMs: PROBE_EVERY_MS, protocols: ['dns'] });
        // The shared test machine can be so loaded that leadership moves by itself (an election
        // timeout of 500 ms); an attempt during which that happened says nothing about drain: retry.
        let attempt = 0, from = 0, failoverAt = 0, holder: VipNode, other: VipNode, download: string, downloadDoneAt: number, done;
        for (;;) {
          attempt++;
          const holderName = await c.waitSteady(1000, 60_000);
          holder = c.servers.find((s) => s.name === holderName)!;
          other = c.servers.find((s) => s !== holder)!;
          from = console.output.length;
          const startedAt = performance.now();
          console.send('tftpboot 0x40200000 Image\n');
          await console.waitFor(/Loading: [^\n]*#/, 60_000, from);
          failoverAt = monotonicNowMs();
          const running = runLanctl(['failover', '--json', '--socket', holder.socket], { timeoutMs: 150_000 });
          await console.waitFor(/\n=> $/, 120_000, from);
          download = console.output.slice(from);
          downloadDoneAt = performance.now();
          done = await running;
          const movedEarly = c.samples.some((s) => s.at >= startedAt && s.at < downloadDoneAt - 300 && !(s.holders.length === 1 && s.holders[0] === holder.name));
          // The failover reached its drain only after the download had ended (the command's start
          // and catch-up wait took longer than the download on a loaded machine): that attempt says
          // nothing about drain either. A drain that never sees the transfer fails every attempt.
          const drainSeen = /drain: waiting/.test(done.stderr);
          if (attempt >= 3 || (!movedEarly && !/is not the leader/.test(done.stderr) && drainSeen)) break;
          t.comment(`attempt ${attempt}: ${movedEarly ? 'leadership moved by itself during the download (machine overloaded)' : !drainSeen ? `the download ended ${Math.round(downloadDoneAt - startedAt)} ms after it started, before the failover reached its drain (${done.stdout.trim().slice(0, 200)})` : 'the holder lost leadership before the failover'}; again`);
          await new Promise((r) => setTimeout(r, 2000));
        }
        const failoverDone = monotonicNowMs();
        await new Promise((r) => setTimeout(r, 500));
        await prober.stop();

        t.match(download, new RegExp(`Bytes transferred = ${image.length}\\b`), 'U-Boot got every byte');
        t.notMatch(download, /TFTP error|Retry count exceeded/, 'no TFTP error reached U-Boot');
        const check = await console.run('crc32 0x40200000 ${filesize}');
        t.match(check, new RegExp(`==> ${want}`), `crc32 ${want} matches`);

        t.equal(done.code, 0, `lanctl failover: ${done.stdout}${done.stderr}`);
        t.match(done.stderr, /drain: waiting [0-9.]+ s \(of up to 90 s\) for tftp 10\.66\.0\.10:\d+ Image/, 'lanctl failover said what it waited for and how long');
        const result = JSON.parse(done.stdout) as FailoverResult;
        t.match(result, { from: holder.name, to: other.name, leader: other.name, drainLeft: [] });
        t.ok(result.drainMs >= 1000, `it drained for ${result.drainMs} ms`);
        const moved = await c.waitSample((s) => s.holders.length === 1 && s.holders[0] === other.name, 5000);
        t.ok(moved.at >= downloadDoneAt - 200, 'the VIP moved only after the download finished');
        t.same(overlaps(c.samples), [], 'no sample with two holders');

        // The gap clients saw, as printed, against the prober's measure.
        t.not(result.gapMs, null, `${other.name} reported its half of the gap`);
        const measured = longestGapMs(prober.answers, 'dns', PROBE_EVERY_MS, failoverAt, failoverDone);
        t.comment(`printed gap ${result.gapMs} ms (${result.parts.map(([n, v]) => `${n} ${v}`).join(', ')}), prober measured ${measured} ms`);
        t.ok(prober.answers.length > 20, `${prober.answers.length} DNS answers to the prober`);
        // How close the printed gap comes to the prober's is a timing figure (CI runs at any load:
        // one run here printed 109 ms against a prober's 180 ms): bench:vip reports it as
        // vip.failover.printed_error_ms. Asserted here only what holds at any load: the gap was
        // printed, it is a real silence, and it lies inside the failover command's own run.
        t.ok((result.gapMs ?? -1) > 0, `the printed gap (${result.gapMs} ms) is a real gap`);
        t.ok((result.gapMs ?? Infinity) <= failoverDone - failoverAt, `the printed gap fits inside the failover's ${Math.round(failoverDone - failoverAt)} ms`);
        // Each part is rounded to the millisecond on its own: the sum may differ by that much per part.
        const sum = result.parts.reduce((acc, [, v]) => acc + v, 0);
        t.ok(Math.abs(sum - (result.gapMs ?? 0)) <= result.parts.length, `the printed parts add up to the printed gap (${sum} against ${result.gapMs} ms)`);

        // The boot goes on: the next file comes from the new holder.
        const next = await console.run('tftpboot 0x40200000 who.txt', 60_000);
        t.match(next, /Bytes transferred = 6\b/, `the next tftpboot works (from ${other.name})`);
        const served = (): boolean => /"event":"tftp\.transfer\.done"[^\n]*who\.txt/.test(other.daemon!.logs());
        for (let i = 0; i < 40 && !served(); i++) await new Promise((r) => setTimeout(r, 100));
        t.ok(served(), `${other.name} served it`);
      } finally {
        qemu.kill('SIGKILL');
      }
    });
  });
});
