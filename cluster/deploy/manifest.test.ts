// The manifest's canonical form and id: entry order and key order never change the bytes, mtime is
// not part of it, every content/mode/owner/link change changes the id and is named by the diff;
// scanTree on a real temporary tree records hardlink groups and symlinks; decode never throws.
import t from 'tap';
import fc from 'fast-check';
import { mkdtempSync, writeFileSync, mkdirSync, linkSync, symlinkSync, utimesSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checklist, decodeManifest, describeChanges, diffManifests, encodeManifest, manifestCounts, manifestId, type Manifest } from './manifest.js';
import { parseGetfattr, scanTree } from './scan.js';

const base: Manifest = {
  xattrs: true,
  entries: [
    { path: '.', type: 'd', mode: 0o755, uid: 0, gid: 0 },
    { path: 'etc', type: 'd', mode: 0o755, uid: 0, gid: 0 },
    { path: 'etc/hosts', type: 'f', mode: 0o644, uid: 0, gid: 0, size: 3, sha256: 'a'.repeat(64), xattrs: { 'user.b': '02', 'user.a': '01' } },
    { path: 'etc/hosts2', type: 'f', mode: 0o644, uid: 0, gid: 0, size: 3, sha256: 'a'.repeat(64), linkTo: 'etc/hosts' },
    { path: 'bin', type: 'l', mode: 0o777, uid: 0, gid: 0, target: 'usr/bin' },
  ],
};

t.test('the canonical form is sorted by path with a fixed key order, and the id is its sha256', async (t) => {
  const text = encodeManifest(base);
  t.equal(text.split('\n')[0], 'lanha-rootfs-manifest 1 xattrs=1');
  t.same(text.trim().split('\n').slice(1).map((l) => JSON.parse(l).p), ['.', 'bin', 'etc', 'etc/hosts', 'etc/hosts2']);
  t.match(text, '{"p":"etc/hosts","t":"f","m":420,"u":0,"g":0,"s":3,"h":"' + 'a'.repeat(64) + '","x":{"user.a":"01","user.b":"02"}}');
  t.match(manifestId(base), /^[0-9a-f]{64}$/);
  const shuffled = { ...base, entries: [...base.entries].reverse() };
  t.equal(manifestId(shuffled), manifestId(base), 'entry order does not matter');
  const decoded = decodeManifest(text);
  t.ok(decoded.ok);
  if (decoded.ok) t.equal(manifestId(decoded.manifest), manifestId(base), 'decode(encode(m)) keeps the id');
});

t.test('every kind of change changes the id and is named by diffManifests', async (t) => {
  const change = (i: number, patch: object): Manifest => ({ ...base, entries: base.entries.map((e, j) => (j === i ? { ...e, ...patch } : e)) });
  const cases: Array<[string, Manifest, string]> = [
    ['content', change(2, { sha256: 'b'.repeat(64) }), 'etc/hosts (content)'],
    ['mode', change(2, { mode: 0o600 }), 'etc/hosts (mode)'],
    ['owner', change(2, { uid: 1000 }), 'etc/hosts (owner)'],
    ['symlink target', change(4, { target: 'x' }), 'bin (symlink target)'],
    ['hardlink broken', change(3, { linkTo: undefined }), 'etc/hosts2 (hardlink)'],
    ['xattr', change(2, { xattrs: { 'user.a': '01' } }), 'etc/hosts (xattrs)'],
    ['missing', { ...base, entries: base.entries.slice(0, 4) }, 'bin (missing)'],
    ['added', { ...base, entries: [...base.entries, { path: 'new', type: 'f', mode: 0o644, uid: 0, gid: 0, size: 0, sha256: 'c'.repeat(64) }] }, 'new (added)'],
  ];
  for (const [name, m, named] of cases) {
    t.not(manifestId(m), manifestId(base), `${name} changes the id`);
    t.equal(describeChanges(diffManifests(base, m)), named, `${name} is named`);
  }
  t.same(diffManifests(base, base), []);
});

t.test('counts, checklist and hostile manifests', async (t) => {
  t.same(manifestCounts(base), { files: 2, dirs: 2, symlinks: 1, others: 0, hardlinks: 1, bytes: 3 });
  t.equal(checklist(base), `${'a'.repeat(64)}  ./etc/hosts\n${'a'.repeat(64)}  ./etc/hosts2\n`);
  for (const bad of ['', 'hello\n', 'lanha-rootfs-manifest 1 xattrs=1\n{"p":1}\n', 'lanha-rootfs-manifest 1 xattrs=1\nnot json\n']) {
    t.equal(decodeManifest(bad).ok, false, JSON.stringify(bad));
  }
  fc.assert(fc.property(fc.string(), (s) => { decodeManifest('lanha-rootfs-manifest 1 xattrs=0\n' + s); decodeManifest(s); }));
});

t.test('scanTree reads a real tree: hashes, hardlink groups, symlinks; mtime is not part of the id', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-manifest-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'etc'));
  writeFileSync(join(dir, 'etc/a'), 'abc');
  linkSync(join(dir, 'etc/a'), join(dir, 'etc/z'));
  linkSync(join(dir, 'etc/a'), join(dir, 'b'));
  symlinkSync('etc/a', join(dir, 'link'));
  chmodSync(join(dir, 'etc'), 0o750);
  const m = await scanTree(dir, { xattrs: false });
  const byPath = new Map(m.entries.map((e) => [e.path, e]));
  t.equal(byPath.get('b')?.linkTo, undefined, 'the first path of the group (byte order) carries no link');
  t.equal(byPath.get('etc/a')?.linkTo, 'b');
  t.equal(byPath.get('etc/z')?.linkTo, 'b');
  t.equal(byPath.get('etc/a')?.sha256, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  t.equal(byPath.get('link')?.target, 'etc/a');
  t.equal(byPath.get('etc')?.mode, 0o750);
  const id = manifestId(m);
  utimesSync(join(dir, 'etc/a'), 1, 1);
  t.equal(manifestId(await scanTree(dir, { xattrs: false })), id, 'touching a file keeps the id');
  writeFileSync(join(dir, 'etc/a'), 'abd');
  const changed = diffManifests(m, await scanTree(dir, { xattrs: false }));
  t.same(changed.map((c) => c.path), ['b', 'etc/a', 'etc/z'], 'a changed file is named on every path of its inode');
});

t.test('getfattr dump format: escaped names, hex values, files outside the root ignored', async (t) => {
  const dump = '# file: /r\nuser.top=0x01\n\n# file: /r/a\\040b\nuser.x=0x6869\nsecurity.capability=0xAB\n\n# file: /other\nuser.y=0x00\n';
  const x = parseGetfattr(dump, '/r/');
  t.same([...x.entries()], [['.', { 'user.top': '01' }], ['a b', { 'user.x': '6869', 'security.capability': 'ab' }]]);
});
