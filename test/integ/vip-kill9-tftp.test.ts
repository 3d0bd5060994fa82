import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { requireLab, withLab, type LabHost } from '../support/netns.js';
import { requireQemu, UbootConsole, ubootArgs, ubootUnavailable } from '../support/qemu.js';
import { overlaps, vipCluster, VIP, withVipCluster, type VipCluster, type VipNode } from './vip-lab.js';

// A TFTP download cut by a crash of the VIP holder (kill -9 of its daemon, issue 12): the client
// finds out by its own timeout (nobody is left to answer the transfer's port; the new holder's
// kernel answers ICMP port unreachable, which TFTP clients ignore), and a retry against the VIP is
// served by the new holder. Two real clients, each through a link shaped with tc tbf so the
// download lasts seconds and the kill lands mid-transfer:
//   - tftp-hpa with the timeouts lanha's boot scripts give U-Boot (retransmit 1 s, give up after 5 s):
//     the cut transfer ends, the retry gets every byte (sha256);
//   - U-Boot in qemu-system-aarch64, default environment plus what lanha's rendered boot script sets
//     (netretry once, tftptimeout 2000, tftptimeoutcountmax 5, up to 5 tries 3 s apart,
//     services/boot/defaults.ts): it loads the whole image (crc32) without help.
// Never two VIP holders meanwhile. How long each took is printed (speed figures are bench:failover's).

const IMAGE_BYTES = 3 * 1024 * 1024;

t.setTimeout(900_000);

function sha(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function kill9(node: VipNode): Promise<void> {
  const child = node.daemon!.child;
  child.kill('SIGKILL');
  if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
}

/** The VIP holder's node once one server alone has held it for a second. */
async function holder(c: VipCluster): Promise<{ holder: VipNode; other: VipNode }> {
  const name = await c.waitSteady(1000, 60_000);
  const h = c.servers.find((s) => s.name === name)!;
  return { holder: h, other: c.servers.find((s) => s !== h)! };
}

/** tftp-hpa, octet, retransmit every 1 s, give up after 5 s; resolves with its output and end time. */
function tftpGet(client: LabHost, file: string, out: string): Promise<{ output: string; endedAt: number }> {
  return client.exec('tftp', [VIP], { input: `mode octet\nrexmt 1\ntimeout 5\nget ${file} ${out}\nquit\n`, timeoutMs: 120_000 })
    .then((r) => ({ output: r.stdout + r.stderr, endedAt: performance.now() }));
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('kill -9 of the VIP holder mid-download: tftp-hpa ends and its retry succeeds; U-Boot loads its image', async (t) => {
  if (!requireLab(t, ['tc', 'tftp'])) return;
  await withLab(async (lab) => {
    // 1 s election timeout: long enough to keep leadership still on a loaded test machine.
    const c = await vipCluster(lab, 'fast', { electionTimeout: '1000ms' });
    await withVipCluster(t, lab, c, async () => {
      const image = randomBytes(IMAGE_BYTES);
      for (const s of c.servers) writeFileSync(join(c.dir, `tftp-${s.name}`, 'Image'), image);
      // Host 3 is the client (a, b, w, cli): shape what the switch sends it.
      const shaped = await lab.execSwitch('tc', ['qdisc', 'add', 'dev', lab.bridgePort(3), 'root', 'tbf', 'rate', '4mbit', 'burst', '4kb', 'latency', '200ms']);
      t.equal(shaped.code, 0, `tc tbf on the client's port: ${shaped.stderr}`);
      await Promise.all([...c.servers, c.witness].map((n) => c.start(n)));

      // ---- tftp-hpa ----
      let roles = await holder(c);
      const out = join(c.dir, 'Image.got');
      const started = performance.now();
      const cut = tftpGet(c.client, 'Image', out);
      await waitFor(() => existsSync(out) && statSync(out).size > 256 * 1024, 60_000, 'the download to start');
      const killedAt = performance.now();
      await kill9(roles.holder);
      const first = await cut;
      const gotBefore = existsSync(out) ? statSync(out).size : 0;
      t.match(first.output, /timed out|Error/i, `the cut transfer ended on the client (${first.output.trim().replace(/\s+/g, ' ')})`);
      t.ok(gotBefore < IMAGE_BYTES, `it had ${gotBefore} of ${IMAGE_BYTES} bytes`);
      const moved = await c.waitSample((s) => s.holders.length === 1 && s.holders[0] === roles.other.name, 10_000, killedAt);
      const retryAt = performance.now();
      const retry = await tftpGet(c.client, 'Image', out);
      const got = readFileSync(out);
      t.equal(sha(got), sha(image), `the retry against the VIP got every byte from ${roles.other.name} (${retry.output.trim() || 'no output'})`);
      t.same(overlaps(c.samples), [], 'no sample with two VIP holders');
      t.comment(`tftp-hpa (rexmt 1, timeout 5): download started ${Math.round(killedAt - started)} ms before the kill; the client gave up ${Math.round(first.endedAt - killedAt)} ms after it; the VIP moved ${Math.round(moved.at - killedAt)} ms after it; the retry took ${Math.round(retry.endedAt - retryAt)} ms`);
      await c.start(roles.holder);

      // ---- U-Boot ----
      if (!requireQemu(t, 'the U-Boot part of the kill -9 TFTP test', ubootUnavailable)) return;
      const qemu = c.client.spawn('qemu-system-aarch64', ubootArgs({ netdev: 'user,id=n0', mac: '52:54:00:97:04:04' }), { stdio: ['pipe', 'pipe', 'pipe'] });
      const console = new UbootConsole(qemu);
      try {
        await console.prompt(120_000);
        // What DHCP would have set, and what lanha's rendered boot script sets (services/boot/defaults.ts).
        await console.run(`setenv ipaddr 10.0.2.15; setenv netmask 255.255.255.0; setenv gatewayip 10.0.2.2; setenv serverip ${VIP}; setenv netretry once; setenv tftptimeout 2000; setenv tftptimeoutcountmax 5`);
        roles = await holder(c);
        const from = console.output.length;
        const loopStarted = performance.now();
        // The load loop of lanha's boot script, on one line: up to 5 tries, 3 s apart.
        console.send('setenv lh_ok 0; for lh_try in 1 2 3 4 5; do if test "${lh_ok}" = 0; then if tftpboot 0x40200000 Image; then setenv lh_ok 1; else echo "lanha: loading Image failed (try ${lh_try} of 5)"; sleep 3; fi; fi; done; echo "lh_ok=${lh_ok}"\n');
        await console.waitFor(/Loading: [^\n]*#{5}/, 90_000, from);
        const ubootKilledAt = performance.now();
        await kill9(roles.holder);
        // Up to the prompt after it: a prompt still on its way would end the next run() before its output.
        await console.waitFor(/lh_ok=[01]\n=> $/, 240_000, from);
        const loadedAt = performance.now();
        const log = console.output.slice(from);
        t.match(log, /lh_ok=1/, 'U-Boot loaded the image without help');
        t.match(log, new RegExp(`Bytes transferred = ${IMAGE_BYTES}\\b`), 'every byte, in the end');
        const want = (crc32(image) >>> 0).toString(16).padStart(8, '0');
        t.match(await console.run('crc32 0x40200000 ${filesize}'), new RegExp(`==> ${want}`), `crc32 ${want} matches`);
        t.same(overlaps(c.samples), [], 'no sample with two VIP holders');
        const tries = (log.match(/loading Image failed/g) ?? []).length;
        t.comment(`U-Boot (netretry once, tftptimeout 2000 x 5, 5 tries 3 s apart): killed ${Math.round(ubootKilledAt - loopStarted)} ms into the load; image loaded ${Math.round(loadedAt - ubootKilledAt)} ms after the kill, after ${tries} failed tr${tries === 1 ? 'y' : 'ies'}`);
        await c.start(roles.holder);
      } finally {
        qemu.kill('SIGKILL');
      }
    });
  });
});
