import t from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { freePort } from '../support/ports.js';

// `lanctl boot render` against a running daemon (loopback, high ports, no root) and `lanctl boot
// inspect` on what it wrote: an address nobody leased gets the unknown-node script as a valid
// U-Boot image; errors name what failed with exit code 1; a broken image is refused by inspect.

const yaml = (tftpPort: number, httpPort: number): string => `
node:
  name: b1
  address: 127.0.0.1
  stateDir: "{{dir}}/state"
  controlSocket: "{{dir}}/lanha.sock"
tftp:
  port: ${tftpPort}
  root: "{{dir}}/root"
profiles:
  arm64: { arch: arm64, kernel: arm64/Image }
boot:
  defaultProfile: arm64
  http: { port: ${httpPort} }
`;

t.test('lanctl boot render and boot inspect', async (t) => {
  const s = scratchConfig(yaml(await freePort(), await freePort()));
  mkdirSync(join(s.dir, 'root'));
  const daemon = await serveDaemon(s.file);
  t.teardown(async () => { await daemon.stop(); s.cleanup(); });
  const socket = join(s.dir, 'lanha.sock');

  const status = await runLanctl(['status', '--json', '--socket', socket]);
  const services = (JSON.parse(status.stdout) as { services: Record<string, { listening: string[] }> }).services;
  t.match(services['boot']?.listening, [/^tcp 127\.0\.0\.1:\d+$/], 'the boot HTTP listener runs');

  const image = join(s.dir, 'unknown.img');
  const r = await runLanctl(['boot', 'render', '127.0.0.9', '--out', image, '--socket', socket]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /# boot\.scr\.uimg for an unknown client at 127\.0\.0\.9, served as a U-Boot script image/);
  t.match(r.stdout, /lanctl nodes accept \$\{ethaddr\} NAME/);
  const inspected = await runLanctl(['boot', 'inspect', image]);
  t.equal(inspected.code, 0, inspected.stderr);
  t.match(inspected.stdout, /a valid U-Boot script image\n  name: "lanha unknown node"/);
  t.match(inspected.stdout, /both verify/);

  const ipxe = await runLanctl(['boot', 'render', '127.0.0.9', '--file', 'boot.ipxe', '--json', '--socket', socket]);
  t.equal(ipxe.code, 0, ipxe.stderr);
  t.match(JSON.parse(ipxe.stdout), { file: 'boot.ipxe', kind: 'ipxe', node: null, text: /^#!ipxe\n/ });

  const nobody = await runLanctl(['boot', 'render', 'no-such-node', '--socket', socket]);
  t.equal(nobody.code, 1);
  t.match(nobody.stderr, /no node or address "no-such-node"/);
  const notBoot = await runLanctl(['boot', 'render', '127.0.0.9', '--file', 'arm64/Image', '--socket', socket]);
  t.equal(notBoot.code, 1);
  t.match(notBoot.stderr, /"arm64\/Image" is not a boot file/);
  const usage = await runLanctl(['boot', 'render', '--socket', socket]);
  t.equal(usage.code, 2);

  const notImage = await runLanctl(['boot', 'inspect', s.file]);
  t.equal(notImage.code, 1);
  t.match(notImage.stderr, /not a valid U-Boot script image: (bad magic|shorter than)/);
});
