import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireLab, withLab, type LabHost } from '../support/netns.js';
import { logRecords, scratchConfig, serveDaemon } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';

// lanha's TFTP (the real daemon) in a network namespace, real clients in another, across a bridge:
// the transfer sockets bind the served address, so replies come from the address the client used.
// When the kernel has netem (sch_netem), the bridge ports add 5 % loss, reordering and duplication;
// this machine's kernel has none, so test/integ/tftp-loss.test.ts does the same impairments with a
// user-space relay on loopback.

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

t.test('transfers across namespaces (with netem when the kernel has it)', async (t) => {
  if (!requireLab(t, ['tc', 'curl', 'tftp', 'atftp'])) return;
  const scratch = scratchConfig(`node:
  name: lab-tftp
  address: 10.231.0.1
  stateDir: {{dir}}/state
  controlSocket: {{dir}}/lanha.sock
tftp:
  port: 69
  listen: [10.231.0.1]
  root: {{dir}}/root
  timeout: 200ms
  retries: 10
`);
  t.teardown(scratch.cleanup);
  chmodSync(scratch.dir, 0o755);
  const root = join(scratch.dir, 'root');
  mkdirSync(root);
  chmodSync(root, 0o755);
  const payload = randomBytes(96 * 1024 + 333);
  writeFileSync(join(root, 'initrd.bin'), payload, { mode: 0o644 });
  const exact = randomBytes(1468 * 64);
  writeFileSync(join(root, 'exact.bin'), exact, { mode: 0o644 });

  await withLab(async (lab) => {
    const server = await lab.addHost('srv', '10.231.0.1/24');
    const client = await lab.addHost('cli', '10.231.0.2/24');
    for (const port of [lab.bridgePort(0), lab.bridgePort(1)]) {
      const r = await lab.execSwitch('tc', ['qdisc', 'add', 'dev', port, 'root', 'netem', 'delay', '2ms', 'reorder', '25%', '50%', 'loss', '5%', 'duplicate', '5%']);
      if (r.code !== 0) t.comment(`no netem on this kernel (${r.stderr.trim()}): a clean link here, impairments in tftp-loss.test.ts`);
    }
    const daemon = await serveDaemon(scratch.file, { command: ['ip', 'netns', 'exec', server.ns, process.execPath, LANCTL] });
    try {
      const fetches: Array<[string, string[], string]> = [
        ['curl blksize 1468', ['curl', '-sS', '--tftp-blksize', '1468', '-o', '{out}', 'tftp://10.231.0.1/initrd.bin'], 'initrd.bin'],
        ['curl blksize 512', ['curl', '-sS', '--tftp-blksize', '512', '-o', '{out}', 'tftp://10.231.0.1/exact.bin'], 'exact.bin'],
        ['curl without options', ['curl', '-sS', '--tftp-no-options', '-o', '{out}', 'tftp://10.231.0.1/initrd.bin'], 'initrd.bin'],
        ['tftp-hpa', ['tftp', '-m', 'octet', '10.231.0.1', '-c', 'get', 'initrd.bin', '{out}'], 'initrd.bin'],
        ...[4, 8, 16].map((w): [string, string[], string] => [`atftp windowsize ${w}`, ['atftp', '--option', 'blksize 1468', '--option', `windowsize ${w}`, '-g', '-r', 'initrd.bin', '-l', '{out}', '10.231.0.1'], 'initrd.bin']),
        ['atftp windowsize 8, exact multiple', ['atftp', '--option', 'blksize 1468', '--option', 'windowsize 8', '-g', '-r', 'exact.bin', '-l', '{out}', '10.231.0.1'], 'exact.bin'],
      ];
      let n = 0;
      for (const [label, argv, file] of fetches) {
        const out = join(scratch.dir, `out-${n++}`);
        const r = await exec(client, argv.map((a) => a.replace('{out}', out)));
        let got = 'missing';
        try { got = sha(readFileSync(out)); } catch { /* stays missing */ }
        t.equal(got, sha(file === 'exact.bin' ? exact : payload), `${label}: checksum matches (${r.stderr.trim()})`);
      }
      // The client exits once it sent its last ACK: the daemon's line may come a moment later.
      const doneLines = (): Array<{ size: number; blksize: number; retransmits: number; windowsize: number }> => logRecords(daemon.logs(), 'tftp.transfer.done');
      for (let i = 0; i < 300 && doneLines().length < fetches.length; i++) await new Promise((r) => setTimeout(r, 100));
      const done = doneLines();
      t.equal(done.length, fetches.length, 'one done line per transfer');
      for (const line of done) {
        const blocks = Math.floor(line.size / line.blksize) + 1;
        // 5 % loss each way plus 5 % duplicates: a resend storm would show as retransmits near or above the block count.
        t.ok(line.retransmits <= Math.max(8, blocks * 0.6) * line.windowsize, `windowsize ${line.windowsize}: ${line.retransmits} retransmits for ${blocks} blocks`);
      }
      t.ok(lab.resolvConfUnchanged(), 'host resolv.conf untouched');
    } finally {
      await daemon.stop();
    }
  });
});

async function exec(host: LabHost, argv: string[]): Promise<{ code: number; stderr: string }> {
  const r = await host.exec(argv[0]!, argv.slice(1), { timeoutMs: 60_000 });
  return { code: r.code, stderr: r.stderr };
}
