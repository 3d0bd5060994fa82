// npm run bench:boot -- the cost of one node's boot.scr.uimg: lanha renders it in process per request
// (template + image + both CRCs, through the same provider TFTP and HTTP use) vs the hand-built way,
// one `mkimage -A arm64 -O linux -T script -C none` run per node (what a sync script does for each
// node on every change). Both make the same kind of image for 200 different nodes; the images are
// checked with lanha's reader. Env: NODES (200), ROUNDS (5, the median is reported).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BootFiles } from '../services/boot/provider.js';
import { bootConfig, profilesConfig } from '../services/boot/config.js';
import { readScriptImage } from '../services/boot/uimage.js';
import { silentLogger } from '../lib/log.js';
import { systemClock } from '../lib/clock.js';

const NODES = Number(process.env['NODES'] ?? 200);
const ROUNDS = Number(process.env['ROUNDS'] ?? 5);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const profiles = profilesConfig.parse({
  arm64: { arch: 'arm64', kernel: 'arm64/Image', initrd: 'arm64/initrd.gz', bootargs: 'console=ttyAMA0 lanha.node={{name}} lanha.gen={{generation}}' },
});
const files = new BootFiles({
  boot: bootConfig.parse({ defaultProfile: 'arm64' }), profiles, log: silentLogger, clock: systemClock,
  resolve: (ip) => ({ name: `node-${ip.split('.').at(-1)!}`, mac: '52:54:00:00:00:01', ip, profile: 'arm64', generation: 'g1' }),
});
const ips = Array.from({ length: NODES }, (_, i) => `10.20.${Math.floor(i / 250)}.${(i % 250) + 1}`);

function lanhaRound(): { usPerNode: number; script: string } {
  const started = performance.now();
  let last: Buffer | null = null;
  for (const ip of ips) {
    const r = files.lookup('boot.scr.uimg', ip, '10.20.0.1');
    if (r.kind !== 'file') throw new Error(`no file for ${ip}`);
    last = r.bytes;
  }
  const ms = performance.now() - started;
  const read = readScriptImage(last!);
  if (!read.ok) throw new Error(`bad image: ${read.error.code}`);
  return { usPerNode: (ms * 1000) / NODES, script: read.value.script.toString() };
}

function mkimageRound(dir: string, script: string): number {
  const started = performance.now();
  for (let i = 0; i < NODES; i++) {
    const source = join(dir, `n${i}.cmd`);
    writeFileSync(source, script.replace('node-', `node${i}-`));
    execFileSync('mkimage', ['-A', 'arm64', '-O', 'linux', '-T', 'script', '-C', 'none', '-n', `node${i}`, '-d', source, join(dir, `n${i}.scr.uimg`)], { stdio: 'ignore' });
  }
  const ms = performance.now() - started;
  if (!readScriptImage(readFileSync(join(dir, `n${NODES - 1}.scr.uimg`))).ok) throw new Error('mkimage wrote a bad image');
  return (ms * 1000) / NODES;
}

const lanha: number[] = [];
const anchor: number[] = [];
let script = '';
let mkimage = true;
try { execFileSync('mkimage', ['-V'], { stdio: 'ignore' }); } catch { mkimage = false; }
const dir = mkdtempSync(join(tmpdir(), 'lanha-bench-boot-'));
try {
  for (let round = 0; round < ROUNDS; round++) {
    const r = lanhaRound();
    lanha.push(r.usPerNode);
    script = r.script;
    if (mkimage) anchor.push(mkimageRound(dir, script));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const l = median(lanha);
console.log(`boot.scr.uimg for ${NODES} nodes, median of ${ROUNDS} rounds: lanha ${l.toFixed(1)} us/node (rendered per request)` +
  (mkimage ? `, mkimage ${median(anchor).toFixed(1)} us/node (one process per node)` : ''));
if (!mkimage) console.log('mkimage missing (apt-get install u-boot-tools): the anchor is NA');
const a = mkimage ? median(anchor) : NaN;
console.log(`RESULT boot.render_us_per_node lanha=${l.toFixed(1)} mkimage=${mkimage ? a.toFixed(1) : 'NA'} ratio=${mkimage ? (l / a).toFixed(3) : 'NA'} unit=us better=lower`);
