import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TftpServer } from '../../services/tftp/server.js';
import { tftpConfig } from '../../services/tftp/config.js';
import { BootFiles } from '../../services/boot/provider.js';
import { bootConfig, profilesConfig } from '../../services/boot/config.js';
import { reservationResolver } from '../../services/boot/resolve.js';
import { readScriptImage } from '../../services/boot/uimage.js';
import type { Resolved } from '../../services/boot/render.js';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { parseIpv4 } from '../../lib/ipv4.js';
import { Fsm } from '../../cluster/fsm.js';
import { MemoryStateLog } from '../../cluster/state-log.js';
import { which } from '../support/netns.js';
import { eventually, haveTools, runTool as run } from '../support/tools.js';

// Per-client boot files over real TFTP: lanha's TFTP server (in this process, 127.0.0.1, port 0,
// a worker thread) with the boot provider, and curl asking from 127.0.0.2, .3, ... (--interface):
// each leased node gets its own boot.scr.uimg (checked with our reader and with dumpimage), an
// unknown MAC gets the accept script, a render over the size limit is a TFTP error, the last
// good file survives a later render error, and each file becomes a node.boot event. Loopback only.

t.test('per-client boot files over TFTP from several client addresses', async (t) => {
  if (!haveTools(t, ['curl'], 'boot TFTP test')) return;
  const top = mkdtempSync(join(tmpdir(), 'lanha-boot-tftp-'));
  chmodSync(top, 0o755);
  const root = join(top, 'root');
  const out = join(top, 'out');
  mkdirSync(join(root, 'arm64'), { recursive: true });
  mkdirSync(out);
  const kernel = Buffer.from('not really a kernel\n'.repeat(500));
  writeFileSync(join(root, 'arm64', 'Image'), kernel, { mode: 0o644 });
  writeFileSync(join(root, 'boot.scr.uimg'), 'the disk copy must never be served\n', { mode: 0o644 });

  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const fsm = new Fsm();
  const state = new MemoryStateLog(fsm, systemClock);
  const mac = (n: number): string => `52:54:00:0b:00:0${n}`;
  for (const n of [2, 3, 4, 5, 6]) {
    await state.propose({ type: 'lease.grant', ip: parseIpv4(`127.0.0.${n}`)!, mac: mac(n), hostname: `host${n}`, subnet: '127.0.0.0/8', leaseMs: 3_600_000 });
  }
  const reservations = [2, 3, 5, 6].map((n) => ({ mac: mac(n), ip: parseIpv4(`127.0.0.${n}`)!, hostname: `node-${String.fromCharCode(95 + n)}` }));
  const fallback = reservationResolver(fsm, reservations, 'arm64');
  let breakNode6 = false;
  const resolve = (ip: string): Resolved => {
    const r = fallback(ip);
    if ('unknown' in r) return r;
    if (ip === '127.0.0.5') return { ...r, profile: 'huge' };
    if (ip === '127.0.0.6') return breakNode6 ? { ...r, profile: 'needs-group' } : { ...r, profile: 'needs-group', group: 'rack1' };
    return r;
  };
  const profiles = profilesConfig.parse({
    'arm64': { arch: 'arm64', kernel: 'arm64/Image', bootargs: 'console=ttyAMA0 lanha.node={{name}}', http: false },
    'huge': { arch: 'arm64', kernel: 'arm64/Image', uboot: `echo {{name}}\n${'# padding padding padding padding padding padding padding\n'.repeat(200)}` },
    'needs-group': { arch: 'arm64', kernel: 'arm64/Image', uboot: 'echo "{{name}} of {{group}}"\n' },
  });
  const bootFiles = new BootFiles({ boot: bootConfig.parse({ defaultProfile: 'arm64', scriptBytesMax: 4096, files: { pxelinux: ['pxelinux.cfg', 'efi64/pxelinux.cfg'] } }), profiles, resolve, log, clock: systemClock });
  const config = { ...tftpConfig.parse({ root, workers: 1, timeout: '500ms', retries: 3 }), port: 0 };
  const server = new TftpServer({ config, addresses: ['127.0.0.1'], log, clock: systemClock, state, bootFiles });
  await server.start();
  const port = server.port();
  t.teardown(async () => { await server.stop(); rmSync(top, { recursive: true, force: true }); });

  const fetch = async (from: number, name: string): Promise<{ code: number; out: string; bytes: Buffer | null }> => {
    const dest = join(out, `${from}-${name.replaceAll('/', '_')}`);
    rmSync(dest, { force: true });
    const r = await run('curl', ['-sS', '--interface', `127.0.0.${from}`, '--tftp-blksize', '1468', '-o', dest, `tftp://127.0.0.1:${port}/${name}`]);
    return { ...r, bytes: existsSync(dest) && r.code === 0 ? readFileSync(dest) : null };
  };
  const script = (bytes: Buffer | null): string => {
    if (bytes === null) return 'no file';
    const image = readScriptImage(bytes);
    return image.ok ? image.value.script.toString() : `bad image: ${image.error.code}`;
  };

  await t.test('two nodes, two different boot.scr.uimg', async (t) => {
    const a = await fetch(2, 'boot.scr.uimg');
    const b = await fetch(3, 'boot.scr.uimg');
    t.equal(a.code, 0, a.out);
    t.equal(b.code, 0, b.out);
    t.match(script(a.bytes), /booting node-a with profile arm64/);
    t.match(script(a.bytes), /setenv bootargs "console=ttyAMA0 lanha\.node=node-a"/);
    t.match(script(b.bytes), /booting node-b with profile arm64/);
    t.ok(a.bytes !== null && b.bytes !== null && !a.bytes.equals(b.bytes), 'the bytes differ per client');
    if (which('dumpimage') && a.bytes !== null) {
      writeFileSync(join(out, 'a.img'), a.bytes);
      const listed = await run('dumpimage', ['-l', join(out, 'a.img')]);
      t.match(listed.out, /Image Name:\s+lanha node-a/, 'dumpimage reads it');
      t.match(listed.out, /AArch64 Linux Script/);
    }
    const scr = await fetch(2, 'boot.scr');
    t.match(script(scr.bytes), /node-a/, 'boot.scr is a script image too');
    const pxe = await fetch(3, 'pxelinux.cfg/01-52-54-00-0b-00-03');
    t.match(pxe.bytes?.toString() ?? pxe.out, /DEFAULT node-b/);
    const efi = await fetch(3, 'efi64/pxelinux.cfg/01-52-54-00-0b-00-03');
    t.match(efi.bytes?.toString() ?? efi.out, /DEFAULT node-b/, 'the same menu from the second pxelinux directory (UEFI loader)');
    const other = await fetch(2, 'pxelinux.cfg/01-52-54-00-0b-00-03');
    t.not(other.code, 0, 'another node\'s pxelinux menu is not served (no such file on disk)');
    const ipxe = await fetch(2, 'boot.ipxe');
    t.match(ipxe.bytes?.toString() ?? ipxe.out, /kernel --name kernel tftp:\/\/127\.0\.0\.1\/arm64\/Image console=ttyAMA0 lanha\.node=node-a/, 'iPXE over TFTP from the address asked');
  });

  await t.test('an unknown MAC gets the accept script; kernels stay real files', async (t) => {
    const u = await fetch(4, 'boot.scr.uimg');
    t.match(script(u.bytes), /lanctl nodes accept 52:54:00:0b:00:04 NAME/);
    const k = await fetch(2, 'arm64/Image');
    t.ok(k.bytes?.equals(kernel), 'the kernel from the root');
    const escape = await fetch(2, '../etc/passwd');
    t.not(escape.code, 0, 'still confined to the root');
  });

  await t.test('over the size limit: a TFTP error and a log line naming the profile', async (t) => {
    const big = await fetch(5, 'boot.scr.uimg');
    t.not(big.code, 0, 'curl gets an error');
    const failed = lines.find((l) => l['event'] === 'boot.render.failed' && l['profile'] === 'huge');
    t.match(String(failed?.['msg']), /over boot\.scriptBytesMax 4096/);
  });

  await t.test('a render error keeps the last good file', async (t) => {
    const good = await fetch(6, 'boot.scr.uimg');
    t.match(script(good.bytes), /node-e of rack1/);
    breakNode6 = true;
    const again = await fetch(6, 'boot.scr.uimg');
    t.equal(again.code, 0, again.out);
    t.ok(again.bytes !== null && good.bytes !== null && again.bytes.equals(good.bytes), 'the same bytes as before');
    t.match(lines.find((l) => l['event'] === 'boot.render.failed' && l['profile'] === 'needs-group'), { servedLastGood: true, node: 'node-e' });
    await eventually(() => lines.some((l) => l['event'] === 'tftp.transfer.done' && l['client'] === undefined ? false : l['stale'] === true));
    t.ok(lines.some((l) => l['event'] === 'tftp.transfer.done' && l['rendered'] === true && l['stale'] === true), 'the transfer log says it was the last good file');
  });

  await t.test('each served boot file is a node.boot event with name, bytes and ms', async (t) => {
    await eventually(() => fsm.bootEvents(mac(2)).some((e) => e.detail?.startsWith('boot.scr.uimg') === true));
    const events = fsm.bootEvents(mac(2));
    t.ok(events.some((e) => e.event === 'tftp' && /^boot\.scr\.uimg \(\d+ bytes, \d+ ms\)$/.test(e.detail ?? '')), JSON.stringify(events));
    t.ok(events.some((e) => e.event === 'tftp' && /^arm64\/Image \(10000 bytes, \d+ ms\)$/.test(e.detail ?? '')), 'kernels too');
  });
});
