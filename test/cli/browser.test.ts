// The status pages in a real browser (Debian's chromium driven by playwright-core, JavaScript OFF),
// against a real daemon on loopback: DOM values equal `lanctl ... --json`, the search filters rows,
// a hostile host name and TXT record stay text (no <script> element), no console error, no request
// leaves the origin, nothing overflows at 390 px, and screenshots at 1280x900 and 390x844 are
// written to test-output/ and are not blank. If this Chromium cannot talk to playwright-core, the
// same page checks run through Chromium's own --dump-dom and --screenshot instead.
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { opsDaemonConfig } from '../support/ops-daemon.js';
import { repoPath } from '../support/paths.js';
import { haveTools } from '../support/tools.js';
import { isRoot } from '../support/netns.js';
import { summarizePng } from '../support/png.js';
import { dhcpProbe } from '../../services/dhcp/probe.js';

const CHROMIUM = '/usr/bin/chromium';
const OUT = repoPath('test-output');
const FLAGS = ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-gpu', ...(isRoot() ? ['--no-sandbox'] : [])];

// A loaded 2-core machine (several test runs at once) needs more than the default 120 s per file.
t.setTimeout(300_000);

t.test('status pages in Chromium', async (t) => {
  if (!haveTools(t, ['chromium'], 'browser test (Debian chromium)')) return;
  const { yaml, dhcpPort, httpPort } = await opsDaemonConfig({ node: 'pi-a', net: '127.0.40', poolLast: 19, domain: 'rack.lan', ntp: true });
  const scratch = scratchConfig(yaml);
  t.teardown(scratch.cleanup);
  const daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  t.teardown(() => daemon.stop());
  const sock = ['--socket', `${scratch.dir}/s.sock`];
  for (const [i, name] of ['alpha', 'beta', 'gamma'].entries()) {
    await dhcpProbe({ server: '127.0.0.1', port: dhcpPort, mac: `52:54:00:00:01:0${i}`, hostname: name });
  }
  await dhcpProbe({ server: '127.0.0.1', port: dhcpPort, mac: '52:54:00:00:01:66', hostname: '"><img src=x onerror=alert(1)><script>' });
  const txt = await runLanctl(['records', 'set', 'evil.rack.lan', 'TXT', '"<script>alert(2)</script>"', ...sock]);
  t.equal(txt.code, 0, txt.stderr);
  const base = `http://127.0.0.1:${httpPort}`;
  const status = JSON.parse((await runLanctl(['status', '--json', ...sock])).stdout) as { node: string; version: string; configHash: string; cluster: { term: number; commitIndex: number; role: string }; ackAudit: { lostTotal: number; recorded: number } };
  const leases = JSON.parse((await runLanctl(['leases', '--json', ...sock])).stdout) as Array<{ ip: string; hostname: string | null; index: number; ackedBy: string | null }>;
  mkdirSync(OUT, { recursive: true });

  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (error) {
    t.fail(`playwright-core is not installed (npm ci installs it as a devDependency): ${String(error)}`);
    return;
  }
  const profile = mkdtempSync(join(tmpdir(), 'lanha-chromium-'));
  t.teardown(() => rmSync(profile, { recursive: true, force: true }));
  let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>>;
  try {
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
  } catch (error) {
    process.stderr.write(`\n*** playwright-core could not drive ${CHROMIUM} (${String(error).split('\n')[0]}); falling back to --dump-dom / --screenshot\n`);
    await fallback(t, base, profile, leases.length);
    return;
  }
  t.teardown(() => context.close());
  const consoleErrors: string[] = [];
  const offOrigin: string[] = [];
  await context.route('**/*', async (route) => {
    const url = route.request().url();
    if (url.startsWith(`${base}/`) || url.startsWith('data:')) await route.continue();
    else { offOrigin.push(url); await route.abort(); }
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const text = async (testid: string): Promise<string> => (await page.getByTestId(testid).first().textContent())?.trim() ?? '';

  t.test('the status page shows what lanctl status --json says', async (t) => {
    const r = await page.goto(`${base}/`);
    t.equal(r?.status(), 200);
    t.equal(await text('node-name'), status.node);
    t.equal(await text('term'), String(status.cluster.term));
    t.equal(await text('version'), status.version);
    t.equal(await text(`member-${status.node}-role`), status.cluster.role);
    t.equal(await text(`member-${status.node}-commit`), String(status.cluster.commitIndex));
    t.equal(await text(`member-${status.node}-config`), status.configHash.slice(0, 12));
    t.equal(await text('quorum'), 'yes');
    t.equal(await text('acked-lost'), String(status.ackAudit.lostTotal), 'ACKed leases lost, as lanctl status --json says');
    t.match(await text('acked-audit'), `ACKed leases lost: ${status.ackAudit.lostTotal} (no audit yet: ${status.ackAudit.recorded} ACKs recorded`);
    await page.screenshot({ path: join(OUT, 'status-1280.png'), fullPage: false });
  });

  t.test('the leases page lists the leases of lanctl leases --json; search filters rows', async (t) => {
    await page.goto(`${base}/leases`);
    const ips = await page.getByTestId('lease-ip').allTextContents();
    t.same(ips.map((s) => s.trim()), leases.map((l) => l.ip));
    t.same((await page.getByTestId('lease-index').allTextContents()).map((s) => s.trim()), leases.map((l) => String(l.index)));
    t.same((await page.getByTestId('lease-acked-by').allTextContents()).map((s) => s.trim()), leases.map((l) => l.ackedBy ?? 'unknown'));
    t.ok(leases.every((l) => l.ackedBy === status.node), 'every lease was ACKed by this (single) node');
    await page.getByTestId('search').fill('bet');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.waitForURL(/q=bet/);
    t.same((await page.getByTestId('lease-hostname').allTextContents()).map((s) => s.trim()), ['beta']);
    t.equal(await text('lease-count'), '1');
    await page.goto(`${base}/leases?q=%3Cscript%3E`);
    t.equal(await page.getByTestId('query-problem').count(), 1, 'an unusable search is shown as a message');
    await page.goto(`${base}/leases`);
    await page.screenshot({ path: join(OUT, 'leases-1280.png'), fullPage: true });
  });

  t.test('hostile text stays text', async (t) => {
    for (const path of ['/', '/leases', '/dns', '/nodes', '/explain?q=evil.rack.lan']) {
      await page.goto(`${base}${path}`);
      t.equal(await page.locator('script').count(), 0, `${path}: 0 <script> elements`);
      t.equal(await page.locator('img').count(), 0, `${path}: 0 <img> elements`);
    }
    await page.goto(`${base}/dns`);
    t.ok((await page.getByTestId('record-data').allTextContents()).some((s) => s.includes('<script>alert(2)</script>')), 'the TXT data reads as typed');
  });

  t.test('390 px wide: nothing overflows the page; screenshots', async (t) => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [path, file] of [['/', 'status-390.png'], ['/leases', 'leases-390.png'], ['/explain?q=52:54:00:00:01:01', 'explain-390.png']] as const) {
      await page.goto(`${base}${path}`);
      const width = await page.evaluate('document.documentElement.scrollWidth') as number;
      t.ok(width <= 390, `${path}: page width ${width} <= 390`);
      await page.screenshot({ path: join(OUT, file), fullPage: true });
    }
    for (const file of ['status-1280.png', 'leases-1280.png', 'status-390.png', 'leases-390.png', 'explain-390.png']) {
      const png = summarizePng(readFileSync(join(OUT, file)));
      t.ok(png.colours >= 8 && png.inked > 0.01, `${file}: ${png.width}x${png.height}, ${png.colours} colours, ${(png.inked * 100).toFixed(1)} % inked`);
    }
    const wide = summarizePng(readFileSync(join(OUT, 'status-1280.png')));
    t.same([wide.width, wide.height], [1280, 900]);
    t.equal(summarizePng(readFileSync(join(OUT, 'status-390.png'))).width, 390);
  });

  t.test('no console errors, no request off the origin', async (t) => {
    t.same(consoleErrors, []);
    t.same(offOrigin, []);
  });
});

/** The same checks through Chromium's own headless switches (no driver). */
async function fallback(t: Tap, base: string, profile: string, leaseCount: number): Promise<void> {
  const run = (args: string[]): string => {
    const r = spawnSync(CHROMIUM, ['--headless', ...FLAGS, `--user-data-dir=${profile}`, '--blink-settings=scriptEnabled=false', ...args], { encoding: 'utf8', timeout: 60_000 });
    return r.stdout;
  };
  const dom = run(['--dump-dom', `${base}/leases`]);
  t.equal((dom.match(/data-testid="lease-row"/g) ?? []).length, leaseCount, 'rows in the DOM');
  t.notMatch(run(['--dump-dom', `${base}/dns`]), /<script/i, 'no script element');
  for (const [size, file] of [['1280,900', 'status-1280.png'], ['390,844', 'status-390.png']] as const) {
    run([`--window-size=${size}`, `--screenshot=${join(OUT, file)}`, `${base}/`]);
    const png = summarizePng(readFileSync(join(OUT, file)));
    t.ok(png.colours >= 8 && png.inked > 0.01, `${file} is not blank`);
  }
}

interface Tap {
  equal(a: unknown, b: unknown, m: string): unknown;
  notMatch(a: string, b: RegExp, m: string): unknown;
  ok(a: unknown, m: string): unknown;
}
