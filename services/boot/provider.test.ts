import t from 'tap';
import { createLogger } from '../../lib/log.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { BootFiles } from './provider.js';
import { bootConfig, profilesConfig } from './config.js';
import { readScriptImage } from './uimage.js';
import { inventoryResolver, reservationResolver, nodeNameFrom } from './resolve.js';
import { Inventory } from '../../cluster/inventory.js';
import type { Resolved } from './render.js';
import type { Lease } from '../../cluster/fsm.js';
import { parseIpv4 } from '../../lib/ipv4.js';

// Which names are boot files, who gets what, and the last good file: a render error (a missing
// variable) is logged once per window and the node keeps the file it got before; with no file
// before it is an error the server turns into a TFTP ERROR / HTTP 500.

const profiles = profilesConfig.parse({
  arm64: { arch: 'arm64', kernel: 'Image', bootargs: 'gen={{generation}}' },
});

function setup(resolve: (ip: string) => Resolved, boot = bootConfig.parse({ defaultProfile: 'arm64' })) {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
  const clock = new ManualClock();
  const files = new BootFiles({ boot, profiles, resolve, log, clock, vip: '10.0.0.1', httpPort: 8080 });
  return { files, lines, clock };
}

const scriptOf = (bytes: Buffer): string => {
  const r = readScriptImage(bytes);
  return r.ok ? r.value.script.toString() : `bad image: ${r.error.code}`;
};

t.test('boot file names: configured U-Boot and iPXE names, pxelinux 01-MAC and default', async (t) => {
  const { files } = setup(() => ({ unknown: true }));
  t.same(files.kindOf('boot.scr.uimg'), { kind: 'uboot' });
  t.same(files.kindOf('boot.scr'), { kind: 'uboot' });
  t.same(files.kindOf('boot.ipxe'), { kind: 'ipxe' });
  t.same(files.kindOf('pxelinux.cfg/default'), { kind: 'pxelinux' });
  t.same(files.kindOf('pxelinux.cfg/01-52-54-00-AA-BB-07'), { kind: 'pxelinux', mac: '52:54:00:aa:bb:07' });
  t.equal(files.kindOf('pxelinux.cfg/0A140005'), null, 'address names are left to the disk');
  t.equal(files.kindOf('Image'), null);
  const custom = setup(() => ({ unknown: true }), bootConfig.parse({ files: { uboot: ['u.scr'], ipxe: ['menu.ipxe'], pxelinux: 'pxe' } })).files;
  t.same(custom.kindOf('u.scr'), { kind: 'uboot' });
  t.equal(custom.kindOf('boot.scr.uimg'), null);
  t.same(custom.kindOf('pxe/default'), { kind: 'pxelinux' });
  // BIOS and UEFI loaders from one root: pxelinux looks beside the file it was loaded from.
  const both = setup(() => ({ unknown: true }), bootConfig.parse({ files: { pxelinux: ['bios/pxelinux.cfg', 'efi64/pxelinux.cfg/'] } })).files;
  t.same(both.kindOf('bios/pxelinux.cfg/01-52-54-00-aa-bb-07'), { kind: 'pxelinux', mac: '52:54:00:aa:bb:07' });
  t.same(both.kindOf('efi64/pxelinux.cfg/01-52-54-00-aa-bb-07'), { kind: 'pxelinux', mac: '52:54:00:aa:bb:07' }, 'a trailing slash in the config is the same directory');
  t.same(both.kindOf('efi64/pxelinux.cfg/default'), { kind: 'pxelinux' });
  t.equal(both.kindOf('pxelinux.cfg/default'), null, 'the default directory is not one of them now');
  t.equal(both.kindOf('bios/pxelinux.cfg.old/default'), null, 'a directory that only starts with the name is not it');
});

t.test('per client: different nodes get different scripts; names are normalised first', async (t) => {
  const nodes: Record<string, Resolved> = {
    '10.0.0.11': { name: 'n11', mac: '52:54:00:00:00:11', ip: '10.0.0.11', profile: 'arm64', generation: 'g1' },
    '10.0.0.12': { name: 'n12', mac: '52:54:00:00:00:12', ip: '10.0.0.12', profile: 'arm64', generation: 'g2' },
  };
  const { files } = setup((ip) => nodes[ip] ?? { unknown: true });
  const a = files.lookup('boot.scr.uimg', '10.0.0.11', '10.0.0.2');
  const b = files.lookup('./boot.scr.uimg', '10.0.0.12', '10.0.0.2');
  t.ok(a.kind === 'file' && scriptOf(a.bytes).includes('n11') && scriptOf(a.bytes).includes('gen=g1'));
  t.ok(b.kind === 'file' && scriptOf(b.bytes).includes('n12') && scriptOf(b.bytes).includes('gen=g2'));
  t.ok(a.kind === 'file' && a.mac === '52:54:00:00:00:11' && a.node === 'n11' && !a.stale);
  const ipxe = files.lookup('boot.ipxe', '10.0.0.11', '10.0.0.2');
  t.ok(ipxe.kind === 'file' && ipxe.bytes.toString().includes('http://10.0.0.1:8080/Image'), 'http_base is the VIP');
  t.same(files.lookup('Image', '10.0.0.11', '10.0.0.2'), { kind: 'none' });
  t.same(files.lookup('pxelinux.cfg/01-52-54-00-00-00-12', '10.0.0.11', '10.0.0.2'), { kind: 'none' }, 'another MAC\'s menu is not rendered');
  const own = files.lookup('pxelinux.cfg/01-52-54-00-00-00-11', '10.0.0.11', '10.0.0.2');
  t.ok(own.kind === 'file' && own.bytes.toString().includes('DEFAULT n11'));
  const unknown = files.lookup('boot.scr.uimg', '10.0.0.99', '10.0.0.2');
  t.ok(unknown.kind === 'file' && scriptOf(unknown.bytes).includes('lanctl nodes accept ${ethaddr} NAME'));
  t.same(files.lookup('pxelinux.cfg/default', '10.0.0.99', '10.0.0.2'), { kind: 'none' }, 'unknown pxelinux client: the disk answers');
});

t.test('render error: logged (rate-limited), the node keeps its last good file; none before is an error', async (t) => {
  let generation: string | undefined = 'g1';
  const { files, lines, clock } = setup((ip) => {
    const target = { name: 'n11', mac: '52:54:00:00:00:11', ip, profile: 'arm64' };
    return generation === undefined ? target : { ...target, generation };
  });
  const good = files.lookup('boot.scr.uimg', '10.0.0.11', '10.0.0.2');
  t.equal(good.kind, 'file');
  generation = undefined;
  for (let i = 0; i < 10; i++) {
    const again = files.lookup('boot.scr.uimg', '10.0.0.11', '10.0.0.2');
    t.ok(again.kind === 'file' && again.stale && good.kind === 'file' && again.bytes.equals(good.bytes), `try ${i}: the last good file`);
  }
  const warnings = lines.filter((l) => l['event'] === 'boot.render.failed');
  t.equal(warnings.length, 3, 'ten failures, three log lines in the window');
  t.match(String(warnings[0]!['msg']), /profile arm64: bootargs uses \{\{generation\}\}/);
  t.equal(warnings[0]!['servedLastGood'], true);
  clock.advance(61_000);
  files.lookup('boot.scr.uimg', '10.0.0.11', '10.0.0.2');
  t.equal(lines.filter((l) => l['event'] === 'boot.render.failed').length, 4, 'a new window logs again');
  const first = files.lookup('boot.ipxe', '10.0.0.11', '10.0.0.2');
  t.equal(first.kind, 'error', 'no last good iPXE script: an error');
  t.ok(first.kind === 'error' && /bootargs uses \{\{generation\}\}/.test(first.message));
  t.equal(files.counters.toJSON()['boot.served_last_good'], 11);
});

t.test('the last good file is the node\'s own: a MAC given to another node does not get the file rendered for the old one', async (t) => {
  let target: Resolved = { name: 'n11', mac: '52:54:00:00:00:11', ip: '10.0.0.11', profile: 'arm64', generation: 'g1' };
  const { files } = setup(() => target);
  t.equal(files.lookup('boot.scr.uimg', '10.0.0.11', '10.0.0.2').kind, 'file');
  // n11 removed, its board added again as web1, whose render fails: n11's script (its name, its
  // generation) must not boot it.
  target = { name: 'web1', mac: '52:54:00:00:00:11', ip: '10.0.0.11', profile: 'arm64' };
  const after = files.lookup('boot.scr.uimg', '10.0.0.11', '10.0.0.2');
  t.equal(after.kind, 'error', 'no last good file of web1: an error, not n11\'s file');
  target = { name: 'n11', mac: '52:54:00:00:00:11', ip: '10.0.0.11', profile: 'arm64' };
  const back = files.lookup('boot.scr.uimg', '10.0.0.11', '10.0.0.2');
  t.ok(back.kind === 'file' && back.stale && scriptOf(back.bytes).includes('n11'), 'the same node keeps its own');
});

t.test('the fallback resolver: lease -> reservation -> name', async (t) => {
  const leases = new Map<number, Lease>();
  const lease = (ip: string, mac: string, hostname?: string, state: Lease['state'] = 'bound'): void => {
    const l: Lease = { ip: parseIpv4(ip)!, mac, subnet: '10.0.0.0/24', state, grantedAt: 0, expiresAt: 1, changedAt: 0 };
    if (hostname !== undefined) l.hostname = hostname;
    leases.set(l.ip, l);
  };
  lease('10.0.0.11', '52:54:00:00:00:11', 'ignored');
  lease('10.0.0.12', '52:54:00:00:00:12', 'Pi-12.lan');
  lease('10.0.0.13', '52:54:00:00:00:13', 'bad name;reset');
  lease('10.0.0.14', '52:54:00:00:00:14');
  lease('10.0.0.15', '52:54:00:00:00:15', 'x', 'released');
  const reservations = ['11', '12', '13', '15'].map((n) => ({ mac: `52:54:00:00:00:${n}`, ip: parseIpv4(`10.0.0.${n}`)!, ...(n === '11' ? { hostname: 'node11.lan' } : {}) }));
  const resolve = reservationResolver({ lease: (ip) => leases.get(ip) }, reservations, 'arm64');
  t.same(resolve('10.0.0.11'), { name: 'node11', mac: '52:54:00:00:00:11', ip: '10.0.0.11', profile: 'arm64' }, 'reservation host name');
  t.same(resolve('10.0.0.12'), { name: 'pi-12', mac: '52:54:00:00:00:12', ip: '10.0.0.12', profile: 'arm64' }, 'lease host name, first label');
  t.equal((resolve('10.0.0.13') as { name: string }).name, 'node-52-54-00-00-00-13', 'a client-chosen name that is no DNS label is not used');
  t.same(resolve('10.0.0.14'), { unknown: true, mac: '52:54:00:00:00:14' }, 'no reservation: unknown, with its MAC');
  t.same(resolve('10.0.0.15'), { name: 'node-52-54-00-00-00-15', mac: '52:54:00:00:00:15', ip: '10.0.0.15', profile: 'arm64' }, 'released lease: the reservation of the address asked from');
  t.same(resolve('10.0.0.99'), { unknown: true });
  t.equal(nodeNameFrom('-bad'), undefined);
});

t.test('the inventory resolver: lease MAC, else reserved address; profile, group, generation; empty inventory falls back', async (t) => {
  const inventory = new Inventory();
  const leases = new Map<number, Lease>();
  const leaseFor = (ip: string, mac: string): void => {
    leases.set(parseIpv4(ip)!, { ip: parseIpv4(ip)!, mac, subnet: '10.0.0.0/24', state: 'bound', grantedAt: 0, expiresAt: 1, changedAt: 0 });
  };
  const fallback = (): Resolved => ({ name: 'from-fallback', mac: '00:00:00:00:00:00', ip: '0.0.0.0', profile: 'x' });
  const resolve = inventoryResolver({ lease: (ip) => leases.get(ip) }, inventory, 'arm64', (node) => node.runningGeneration, fallback);
  t.equal((resolve('10.0.0.21') as { name: string }).name, 'from-fallback', 'no node yet: the reservation fallback answers');
  inventory.apply({ type: 'node.add', name: 'n21', mac: '52:54:00:00:00:21', profile: 'pi4', group: 'rack1' }, 1);
  inventory.apply({ type: 'node.add', name: 'n22', mac: '52:54:00:00:00:22', ip: parseIpv4('10.0.0.22')! }, 1);
  inventory.apply({ type: 'node.generation', name: 'n21', running: 'gen7' }, 2);
  leaseFor('10.0.0.121', '52:54:00:00:00:21');
  leaseFor('10.0.0.123', '52:54:00:00:00:23');
  t.same(resolve('10.0.0.121'), { name: 'n21', mac: '52:54:00:00:00:21', ip: '10.0.0.121', profile: 'pi4', changedAtMs: 2, group: 'rack1', generation: 'gen7' }, 'by the lease\'s MAC');
  t.same(resolve('10.0.0.22'), { name: 'n22', mac: '52:54:00:00:00:22', ip: '10.0.0.22', profile: 'arm64', changedAtMs: 1 }, 'by its reserved address, default profile');
  t.same(resolve('10.0.0.123'), { unknown: true, mac: '52:54:00:00:00:23' }, 'a leased MAC not in the inventory');
  t.same(resolve('10.0.0.99'), { unknown: true });
});

t.test('image time: the log time of the node\'s last change, not the wall clock, so two LAN nodes serve the same bytes', async (t) => {
  const changedAtMs = Date.UTC(2026, 10, 30, 12, 0, 0, 750);
  const node: Resolved = { name: 'n11', mac: '52:54:00:00:00:11', ip: '10.0.0.11', profile: 'arm64', generation: 'g1', changedAtMs };
  const lanA = setup(() => node);
  const lanB = setup(() => node);
  lanB.clock.jumpWall(3_600_000 + 1234);
  lanA.clock.advance(5000);
  const a = lanA.files.lookup('boot.scr.uimg', '10.0.0.11', '10.0.0.2');
  const b = lanB.files.lookup('boot.scr.uimg', '10.0.0.11', '10.0.0.2');
  t.ok(a.kind === 'file' && b.kind === 'file' && a.bytes.equals(b.bytes), 'renders at different wall times are byte-identical');
  const header = a.kind === 'file' ? readScriptImage(a.bytes) : null;
  t.equal(header?.ok ? header.value.header.timeS : -1, Math.floor(changedAtMs / 1000), 'the image time is the change\'s log time');
  lanA.clock.jumpWall(86_400_000);
  const again = lanA.files.lookup('boot.scr.uimg', '10.0.0.11', '10.0.0.2');
  t.ok(a.kind === 'file' && again.kind === 'file' && again.bytes.equals(a.bytes), 'and a day later, unchanged node: the same bytes');
  const unknown = setup(() => ({ unknown: true, mac: '52:54:00:00:00:99' }));
  unknown.clock.jumpWall(999_000);
  const u = unknown.files.lookup('boot.scr.uimg', '10.0.0.99', '10.0.0.2');
  const uh = u.kind === 'file' ? readScriptImage(u.bytes) : null;
  t.equal(uh?.ok ? uh.value.header.timeS : -1, 0, 'an unknown client\'s script has no log time: 0');
});

t.test('inventoryResolver: changedAtMs is the later of the node\'s change and its generation\'s commit', async (t) => {
  const inventory = new Inventory();
  inventory.apply({ type: 'node.add', name: 'n31', mac: '52:54:00:00:00:31', ip: parseIpv4('10.0.0.31')! }, 5000);
  const committed = new Map([['genA', 9000], ['genB', 1000]]);
  let generation = 'genA';
  const resolve = inventoryResolver(undefined, inventory, 'arm64', () => generation, () => ({ unknown: true }), (id) => committed.get(id));
  t.match(resolve('10.0.0.31'), { name: 'n31', generation: 'genA', changedAtMs: 9000 }, 'a generation committed after the node changed');
  generation = 'genB';
  t.match(resolve('10.0.0.31'), { generation: 'genB', changedAtMs: 5000 }, 'a node changed after its generation was committed');
});

// Any name a client can send (odd case, separators, `..`, `%2f`, backslashes, NUL, very long, another
// node's 01-MAC) renders, if anything, that client's own file: never another node's, never a path
// outside the root, and an unknown client gets only the unknown-node script.
t.test('property: a requested name never yields another node\'s boot file', async (t) => {
  const fc = (await import('fast-check')).default;
  const { seedFromEnv } = await import('../../test/support/seeded.js');
  const nodes: Record<string, Resolved> = {
    '10.0.0.11': { name: 'n11', mac: '52:54:00:00:00:11', ip: '10.0.0.11', profile: 'arm64', generation: 'g1' },
    '10.0.0.12': { name: 'n12', mac: '52:54:00:00:00:12', ip: '10.0.0.12', profile: 'arm64', generation: 'g2' },
  };
  const { files } = setup((ip) => nodes[ip] ?? (ip === '10.0.0.99' ? { unknown: true, mac: '52:54:00:00:00:99' } : { unknown: true }));
  const macText = fc.constantFrom('52-54-00-00-00-11', '52-54-00-00-00-12', '52-54-00-00-00-99', '52:54:00:00:00:12', '52-54-00-00-00-1', '525400000012', '52-54-00-00-00-12-00')
    .chain((m) => fc.constantFrom(m, m.toUpperCase()));
  const piece = fc.oneof(
    fc.constantFrom('boot.scr.uimg', 'boot.scr', 'boot.ipxe', 'pxelinux.cfg', 'default', '..', '.', '', '%2f', '%2e%2e', '\\', '\0', 'Image'),
    macText.map((m) => `01-${m}`),
    fc.string({ maxLength: 8 }),
  );
  const name = fc.oneof(fc.array(piece, { minLength: 1, maxLength: 5 }).chain((parts) => fc.constantFrom('/', '\\').map((sep) => parts.join(sep))), fc.string({ minLength: 250, maxLength: 300 }));
  const client = fc.constantFrom('10.0.0.11', '10.0.0.12', '10.0.0.99', '10.0.0.50');
  fc.assert(fc.property(name, client, (requested, ip) => {
    const r = files.lookup(requested, ip, '10.0.0.2');
    if (r.kind === 'none') return true;
    const own = nodes[ip];
    if (own === undefined || 'unknown' in own) {
      // Unknown clients: only the unknown-node script, with their own MAC when known.
      if (r.kind !== 'file' || r.node !== undefined) return false;
      return r.mac === (ip === '10.0.0.99' ? '52:54:00:00:00:99' : undefined);
    }
    if (r.kind !== 'file' || r.mac !== own.mac || r.node !== own.name) return false;
    const text = r.name.endsWith('.ipxe') || r.name.includes('pxelinux') ? r.bytes.toString() : scriptOf(r.bytes);
    const other = own.name === 'n11' ? 'n12' : 'n11';
    return text.includes(own.name) && !text.includes(other) && !r.name.split('/').includes('..') && !r.name.startsWith('/');
  }), { seed: seedFromEnv(23), numRuns: 3000 });
});
