// The boot tree as path + sha256: two LAN nodes' trees compared file by file (a changed kernel, a
// file on one side only), a file hashed again only after it changed, symlinked directories not
// followed; doctor turns the differences into findings naming the files.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BootFileIndex, compareBootFiles } from './boot-files.js';
import { doctorFindings } from './doctor.js';
import { parseConfig } from '../../config/index.js';
import type { LocalReport, MemberView } from '../../cluster/member-status.js';

function tree(t: { teardown(fn: () => void): void }, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-boot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [path, body] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), body);
  }
  return dir;
}

t.test('two trees compared file by file, and doctor names what differs', async (t) => {
  const a = tree(t, { 'Image': 'kernel v1', 'dtb/rpi4.dtb': 'dtb', 'initrd.img': 'initrd' });
  const b = tree(t, { 'Image': 'kernel v2', 'dtb/rpi4.dtb': 'dtb', 'extra.bin': 'x' });
  symlinkSync(a, join(b, 'loop')); // a symlinked directory: not followed
  const ia = new BootFileIndex([{ dir: a, label: 'tftp' }]);
  const ib = new BootFileIndex([{ dir: b, label: 'tftp' }]);
  await ia.refresh();
  await ib.refresh();
  const da = ia.digest()!, db = ib.digest()!;
  t.same(da.files!.map((f) => f.path), ['Image', 'dtb/rpi4.dtb', 'initrd.img']);
  t.same(db.files!.map((f) => f.path), ['Image', 'dtb/rpi4.dtb', 'extra.bin']);
  t.equal(da.files![1]!.sha256, db.files![1]!.sha256, 'the same dtb hashes alike');
  t.not(da.digest, db.digest);
  t.same(compareBootFiles(da.files!, db.files!), { differ: ['Image'], onlyHere: ['initrd.img'], onlyThere: ['extra.bin'] });

  const local: LocalReport = { node: 'lan-a', version: 'v', configHash: 'h', role: 'leader', leader: 'lan-a', term: 1, commitIndex: 1, appliedIndex: 1, lastIndex: 1, walFsyncP99Ms: 1, bootFiles: da };
  const view: MemberView = {
    report: { ...local, node: 'lan-b', role: 'follower', bootFiles: { digest: db.digest, count: db.count }, sentWallMs: 0, echo: null },
    receivedAt: '', lastContactMs: 100, clockOffsetMs: 0, offsetMethod: 'round-trip', roundTripMs: 1, bootFiles: db.files!,
  };
  const witness: MemberView = { ...view, report: { ...view.report, node: 'witness', bootFiles: null }, bootFiles: null };
  const findings = doctorFindings({ config: parseConfig('node: { name: lan-a }\n'), cluster: { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 1, commitIndex: 1, appliedIndex: 1 }, pools: [], leases: [], nowMs: 0, local, members: { 'lan-b': view, witness } })
    .filter((f) => f.id.startsWith('boot.'));
  t.same(findings.map((f) => `${f.id}:${f.severity}`), ['boot.files-differ:error', 'boot.files-missing:error', 'boot.files-missing:error']);
  t.match(findings[0]!.evidence, '1 boot file(s) differ (sha256) between lan-a and lan-b: Image');
  t.match(findings[1]!.evidence, 'on lan-a are missing on lan-b: initrd.img');
  t.match(findings[2]!.evidence, 'on lan-b are missing on lan-a: extra.bin');

  writeFileSync(join(a, 'Image'), 'kernel v2');
  utimesSync(join(a, 'Image'), new Date(), new Date(Date.now() + 5000));
  await ia.refresh();
  t.same(compareBootFiles(ia.digest()!.files!, db.files!).differ, [], 'a changed file is hashed again');
});
