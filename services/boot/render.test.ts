import t from 'tap';
import fc from 'fast-check';
import { seedFromEnv } from '../../test/support/seeded.js';
import { compileTemplate, renderTemplate } from './template.js';
import { renderBootFile, renderErrorText, renderUnknown, ProfileTemplates, type BootTarget, type RenderContext } from './render.js';
import { profilesConfig, bootConfig } from './config.js';
import { readScriptImage } from './uimage.js';
import { lanhaConfig } from '../../config/index.js';
import { formatIssues } from '../../lib/config-errors.js';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { repoPath } from '../../test/support/paths.js';

// The template language, the built-in boot files and the render errors: what each file holds for
// a node, that a missing variable names itself and its profile, and that the size limit holds.

const target: BootTarget = { name: 'node07', mac: '52:54:00:aa:bb:07', ip: '10.20.0.107', profile: 'arm64', generation: 'g42' };
const context: RenderContext = { server: '10.20.0.1', httpBase: 'http://10.20.0.1:8080', file: 'boot.scr.uimg', timeS: 1_764_590_000, bytesMax: 65536 };
const profiles = profilesConfig.parse({
  arm64: { arch: 'arm64', kernel: 'arm64/Image', initrd: 'arm64/initrd.gz', bootargs: 'console=ttyAMA0 lanha.node={{name}} lanha.gen={{generation}}' },
  armv7: { arch: 'arm', kernel: 'armv7/zImage', dtb: 'armv7/board.dtb' },
  custom: { arch: 'arm64', kernel: 'Image', uboot: 'echo "node {{name}} in {{group}}"\n' },
  gen: { arch: 'arm64', kernel: 'gen/{{generation}}/Image' },
  x86: { arch: 'x86_64', kernel: 'vmlinuz', initrd: 'initrd.img', bootargs: 'quiet', http: false },
});

function script(kind: 'uboot' | 'ipxe' | 'pxelinux', t2: BootTarget, ctx = context): string {
  const r = renderBootFile(kind, t2, profiles, new ProfileTemplates(), ctx);
  if (!r.ok) throw new Error(renderErrorText(r.error));
  if (kind !== 'uboot') return r.bytes.toString();
  const image = readScriptImage(r.bytes);
  if (!image.ok) throw new Error(image.error.code);
  return image.value.script.toString();
}

t.test('templates: variables, sections, inverted sections', async (t) => {
  const c = compileTemplate('a {{name}} {{#initrd}}i={{initrd}}{{/initrd}}{{^initrd}}no initrd{{/initrd}} ${u-boot}');
  t.ok(c.ok);
  if (!c.ok) return;
  t.same(renderTemplate(c.template, { name: 'n1', initrd: 'x.gz' }), { ok: true, text: 'a n1 i=x.gz ${u-boot}' });
  t.same(renderTemplate(c.template, { name: 'n1' }), { ok: true, text: 'a n1 no initrd ${u-boot}' });
  t.same(renderTemplate(c.template, {}), { ok: false, variable: 'name', reason: 'missing' });
  t.same(renderTemplate(c.template, { name: 'a\nreset' }), { ok: false, variable: 'name', reason: 'unsafe', char: '\n' }, 'a value cannot add a line');
});

t.test('templates: compile errors name the tag and line', async (t) => {
  const err = (text: string): string => { const c = compileTemplate(text); return c.ok ? 'ok' : c.error; };
  t.match(err('x\n{{nmae}}'), /line 2: unknown variable "\{\{nmae\}\}"/);
  t.match(err('{{#initrd}}x'), /"\{\{#initrd\}\}" is never closed/);
  t.match(err('{{#initrd}}x{{/dtb}}'), /closes "\{\{#initrd\}\}"/);
  t.match(err('{{/dtb}}'), /closes no open section/);
  t.match(err('a {{ name b }}'), /"\{\{" that starts no tag/);
  t.equal(err('{{ name }}'), 'ok', 'spaces inside a tag are fine');
});

t.test('U-Boot script (arm64): bounded retries, netretry once, booti with initrd, reset on failure', async (t) => {
  const s = script('uboot', target);
  t.match(s, /^# lanha boot script for node07 \(52:54:00:aa:bb:07, 10\.20\.0\.107\), profile arm64, generation g42/);
  t.match(s, /setenv netretry once/);
  t.match(s, /for lh_try in 1 2 3 4 5; do/);
  t.match(s, /tftpboot \$\{kernel_addr_r\} arm64\/Image/);
  t.match(s, /tftpboot \$\{ramdisk_addr_r\} arm64\/initrd\.gz; then\n\s+setenv lh_ok 1\n\s+setenv lh_initrd_size \$\{filesize\}/);
  t.match(s, /setenv lh_fdt \$\{fdtcontroladdr\}/, 'no dtb: U-Boot\'s own device tree');
  t.match(s, /setenv bootargs "console=ttyAMA0 lanha\.node=node07 lanha\.gen=g42"/, 'bootargs rendered with node variables');
  t.match(s, /booti \$\{kernel_addr_r\} \$\{ramdisk_addr_r\}:\$\{lh_initrd_size\} \$\{lh_fdt\}/);
  t.match(s, /could not load arm64\/Image from \$\{serverip\}; resetting in 10 s\"\n\s+sleep 10\n\s+reset/);
  t.match(s, /reset\nfi\n$/, 'ends with a reset, never a hang');
  // A 32-bit ARM U-Boot has no booti: without the check the script reached its reset and the board
  // looped (test/integ/boot-uboot-arm.test.ts runs both checks in U-Boot).
  t.match(s, /^if test -n "\$\{cpu\}" -a "\$\{cpu\}" != armv8; then\n  echo "lanha: profile arm64 boots arm64 \(booti\), but this U-Boot is built for \$\{cpu\}"\n  echo "lanha: not booting node07: give it a profile with arch: arm \(lanctl nodes\), or run a U-Boot built for arm64"\nelse\necho "lanha: booting node07/m,
    'an arm64 profile on a U-Boot not built for armv8: a message, no boot and no reset');
  t.notMatch(s, /\{\{|\}\}/, 'no tag left');
  const r = renderBootFile('uboot', target, profiles, new ProfileTemplates(), context);
  t.ok(r.ok && r.bytes[29] === 22, 'image arch arm64');
});

t.test('U-Boot script (arm): bootz, no initrd, dtb loaded', async (t) => {
  const s = script('uboot', { ...target, profile: 'armv7' });
  t.match(s, /tftpboot \$\{fdt_addr_r\} armv7\/board\.dtb/);
  t.match(s, /bootz \$\{kernel_addr_r\} - \$\{lh_fdt\}/);
  t.notMatch(s, /ramdisk/);
  t.match(s, /setenv bootargs\n/, 'empty bootargs clears the variable');
  t.match(s, /^if test "\$\{cpu\}" = armv8; then\n  echo "lanha: profile armv7 boots 32-bit ARM \(bootz\), but this U-Boot is built for \$\{cpu\}"\n.*arch: arm64 .*\nelse\n/m,
    'a 32-bit ARM profile on an arm64 U-Boot: a message, no boot');
  const r = renderBootFile('uboot', { ...target, profile: 'armv7' }, profiles, new ProfileTemplates(), context);
  t.ok(r.ok && r.bytes[29] === 2, 'image arch arm');
  t.notMatch(script('uboot', { ...target, profile: 'x86' }), /\$\{cpu\}/, 'no check where U-Boot has no 32/64-bit twin');
});

t.test('iPXE script: kernel and initrd over HTTP with bounded tries; TFTP when http is false', async (t) => {
  const s = script('ipxe', target);
  t.match(s, /^#!ipxe\n/);
  t.match(s, /:kernel1\nkernel --name kernel http:\/\/10\.20\.0\.1:8080\/arm64\/Image initrd=initrd console=ttyAMA0 lanha\.node=node07 lanha\.gen=g42 && goto kernel-ok \|\| echo lanha: loading arm64\/Image failed \(try 1 of 5\)/);
  t.match(s, /:kernel5\n[^\n]+\necho lanha: could not load arm64\/Image, rebooting in 10 s\nsleep 10\nreboot \|\| exit 1\n:kernel-ok/);
  t.match(s, /initrd --name initrd http:\/\/10\.20\.0\.1:8080\/arm64\/initrd\.gz/);
  t.match(s, /boot \|\| echo/);
  const x = script('ipxe', { ...target, profile: 'x86' });
  t.match(x, /kernel --name kernel tftp:\/\/10\.20\.0\.1\/vmlinuz initrd=initrd quiet/);
});

t.test('pxelinux menu', async (t) => {
  t.equal(script('pxelinux', { ...target, profile: 'x86' }), '# lanha boot menu for node07 (52:54:00:aa:bb:07, 10.20.0.107), profile x86, generation g42\n'
    + 'DEFAULT node07\nPROMPT 0\nTIMEOUT 0\nLABEL node07\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND quiet\n');
});

t.test('a profile override and path variables', async (t) => {
  t.equal(script('uboot', { ...target, profile: 'custom', group: 'rack1' }), 'echo "node node07 in rack1"\n');
  t.match(script('uboot', { ...target, profile: 'gen' }), /tftpboot \$\{kernel_addr_r\} gen\/g42\/Image/);
});

t.test('render errors name the variable and the profile', async (t) => {
  const fail = (kind: 'uboot' | 'ipxe' | 'pxelinux', t2: BootTarget, ctx = context): string => {
    const r = renderBootFile(kind, t2, profiles, new ProfileTemplates(), ctx);
    return r.ok ? 'ok' : renderErrorText(r.error);
  };
  t.match(fail('uboot', { ...target, profile: 'custom' }), /^profile custom: uboot uses \{\{group\}\}, which has no value for this node/);
  const { generation: _g, ...noGeneration } = target;
  t.match(fail('uboot', noGeneration), /^profile arm64: bootargs uses \{\{generation\}\}/);
  t.match(fail('uboot', { ...noGeneration, profile: 'gen' }), /^profile gen: kernel uses \{\{generation\}\}/);
  t.match(fail('uboot', { ...target, profile: 'gen', generation: '..' }), /kernel renders to "gen\/..\/Image", which is not a path inside the boot root/);
  t.match(fail('uboot', { ...target, profile: 'gen', generation: '../../etc' }), /the value of \{\{generation\}\} in kernel holds "\/"/);
  t.match(fail('ipxe', target, { ...context, httpBase: undefined }), /built-in iPXE script uses \{\{http_base\}\}/);
  t.match(fail('uboot', { ...target, profile: 'nope' }), /profile nope is not in the config's profiles: block/);
  t.match(fail('uboot', { ...target, profile: '' }), /no profile and boot\.defaultProfile is not set/);
  t.match(fail('uboot', { ...target, generation: 'x\nreset' }), /the value of \{\{generation\}\} in bootargs holds "\\n", which is not allowed there/);
});

// A node's values reach firmware scripts unescaped: each one is checked against the characters its
// variable may hold, wherever it is inserted (the script, a path field, the kernel command line).
t.test('hostile node values are refused, never inserted into a boot script', async (t) => {
  const unsafe = (kind: 'uboot' | 'ipxe' | 'pxelinux', t2: BootTarget): string => {
    const r = renderBootFile(kind, t2, profiles, new ProfileTemplates(), context);
    return r.ok ? 'rendered' : r.error.kind === 'unsafe-value' ? `${r.error.variable} ${r.error.field} ${r.error.char}` : r.error.kind;
  };
  t.equal(unsafe('uboot', { ...target, name: 'n1"; reset; echo "' }), 'name bootargs "', 'a quote in the name (through the kernel command line)');
  t.equal(unsafe('uboot', { ...target, profile: 'armv7', name: 'n1;reset' }), 'name the built-in U-Boot script ;', 'a ";" in the name, built-in U-Boot script');
  t.equal(unsafe('ipxe', { ...target, profile: 'armv7', name: 'n1 || shell' }), 'name the built-in iPXE script  ', 'a space in the name (iPXE arguments)');
  t.equal(unsafe('pxelinux', { ...target, profile: 'armv7', name: 'n1\tKERNEL' }), 'name the built-in pxelinux menu \t', 'a tab in the name (pxelinux)');
  t.equal(unsafe('uboot', { ...target, profile: 'custom', group: 'rack1$(reset)' }), 'group uboot $', 'a "$" in the group');
  t.equal(unsafe('uboot', { ...target, profile: 'gen', generation: 'g1;reset' }), 'generation kernel ;', 'a ";" in a generation that lands in a path');
  t.equal(unsafe('uboot', { ...target, profile: 'armv7', name: 'n\u0131' }), 'name the built-in U-Boot script \u0131', 'non-ASCII');
  t.equal(unsafe('uboot', { ...target, profile: 'armv7', mac: '52:54:00:aa:bb:07`' }), 'mac the built-in U-Boot script `');
  t.equal(unsafe('uboot', { ...target, name: 'node-07', group: 'rack.1_a', generation: 'a'.repeat(64) }), 'rendered', 'ordinary values still render');
});

// Syntax characters of U-Boot hush, iPXE and pxelinux: a value that could inject a command changes their count.
const SYNTAX = /[;"'`$\\|&<>\n\r\0 \t#{}()]/g;
const syntaxCount = (text: string): number => text.match(SYNTAX)?.length ?? 0;

t.test('property: whatever a node holds, a rendered boot file has the same syntax as with plain values', async (t) => {
  const plain: BootTarget = { name: 'x', mac: 'x', ip: 'x', profile: 'p', group: 'x', generation: 'x' };
  const fuzzProfiles = profilesConfig.parse({
    p: { arch: 'arm64', kernel: 'gen/{{generation}}/Image', initrd: 'initrd-{{name}}', bootargs: 'console=ttyAMA0 n={{name}} g={{group}} m={{mac}}',
      uboot: 'echo "{{name}} {{group}} {{ip}} {{mac_dashes}}"; tftpboot ${a} {{kernel}}\nsetenv bootargs "{{bootargs}}"\n' },
  });
  const kinds = ['uboot', 'ipxe', 'pxelinux'] as const;
  const expected = new Map(kinds.map((kind) => {
    const r = renderBootFile(kind, plain, fuzzProfiles, new ProfileTemplates(), context);
    if (!r.ok) throw new Error(renderErrorText(r.error));
    return [kind, syntaxCount(r.text)];
  }));
  const value = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 12 }), fc.constantFrom('a;b', 'a"b', 'a b', '$x', 'a\nb', '`a`', 'a||b', '..', 'a/b'));
  fc.assert(fc.property(fc.constantFrom(...kinds), value, value, value, value, value, (kind, name, group, ip, mac, generation) => {
    const r = renderBootFile(kind, { name, group, ip, mac, generation, profile: 'p' }, fuzzProfiles, new ProfileTemplates(), context);
    if (!r.ok) return ['unsafe-value', 'missing-variable', 'bad-path'].includes(r.error.kind);
    return syntaxCount(r.text) === expected.get(kind);
  }), { seed: seedFromEnv(41), numRuns: 3000 });
});

t.test('size limit: a rendered file over scriptBytesMax is an error', async (t) => {
  const r = renderBootFile('uboot', target, profiles, new ProfileTemplates(), { ...context, bytesMax: 1000 });
  t.notOk(r.ok);
  if (!r.ok) {
    t.equal(r.error.kind, 'too-large');
    t.match(renderErrorText(r.error), /over boot\.scriptBytesMax 1000/);
  }
});

t.test('unknown clients: the accept line with the MAC, then a retry', async (t) => {
  const u = renderUnknown('uboot', { unknown: true, mac: '52:54:00:00:00:99' }, context);
  t.ok(u?.ok);
  if (u?.ok) {
    const image = readScriptImage(u.bytes);
    t.ok(image.ok);
    if (image.ok) {
      const s = image.value.script.toString();
      t.match(s, /lanctl nodes accept 52:54:00:00:00:99 NAME/);
      t.match(s, /sleep 30\nreset\n$/);
    }
  }
  const noMac = renderUnknown('uboot', { unknown: true }, context);
  t.ok(noMac?.ok && readScriptImage(noMac.bytes).ok && noMac.text.includes('lanctl nodes accept ${ethaddr} NAME'), 'without a lease: U-Boot prints its own ethaddr');
  const ipxe = renderUnknown('ipxe', { unknown: true }, { ...context, file: 'boot.ipxe' });
  t.ok(ipxe?.ok && ipxe.text.includes('lanctl nodes accept ${netX/mac} NAME') && ipxe.text.includes('chain --replace --autofree boot.ipxe || goto retry'));
  t.equal(renderUnknown('pxelinux', { unknown: true }, context), null, 'pxelinux has no script: the disk (or not found) answers');
});

t.test('config: templates are checked at load, with the key path', async (t) => {
  const problems = (raw: unknown): string[] => {
    const r = lanhaConfig.safeParse(raw);
    return r.success ? [] : formatIssues(r.error.issues, raw);
  };
  const base = { node: { name: 'a' }, tftp: { root: '/srv/tftp' } };
  t.same(problems({ ...base, profiles: { p: { arch: 'arm64', kernel: 'Image' } }, boot: { defaultProfile: 'p' } }), []);
  t.same(problems({ ...base, boot: { files: { pxelinux: ['bios/pxelinux.cfg', 'efi64/pxelinux.cfg'] } } }), [], 'pxelinux directories as a list');
  t.match(problems({ ...base, boot: { files: { pxelinux: ['bios/pxelinux.cfg', '../up'] } } }).join('\n'), /boot\.files\.pxelinux/, 'a directory outside the root names the key');
  t.match(problems({ ...base, boot: { files: { pxelinux: [] } } }).join('\n'), /boot\.files\.pxelinux/, 'an empty list names the key');
  t.match(problems({ ...base, profiles: { p: { arch: 'arm64', kernel: 'Image', uboot: 'echo {{nmae}}' } } }).join('\n'), /profiles\.p\.uboot: .*unknown variable "\{\{nmae\}\}"/);
  t.match(problems({ ...base, profiles: { p: { arch: 'arm64', kernel: '../Image' } } }).join('\n'), /profiles\.p\.kernel: "\.\.\/Image" is not a relative path to a file inside the boot root/);
  t.match(problems({ ...base, profiles: { p: { arch: 'arm64', kernel: 'Image', bootargs: 'x={{kernel}}' } } }).join('\n'), /profiles\.p\.bootargs: .*uses \{\{kernel\}\}/);
  t.match(problems({ ...base, profiles: { p: { arch: 'mips', kernel: 'Image' } } }).join('\n'), /profiles\.p\.arch/);
  t.match(problems({ ...base, profiles: { p: { arch: 'arm64', kernel: 'Image', bootargs: 'console=ttyS0 x="a b"' } } }).join('\n'), /profiles\.p\.bootargs: .*holds "\\"", which a boot script would read as syntax/);
  t.match(problems({ ...base, profiles: { p: { arch: 'arm64', kernel: 'my Image' } } }).join('\n'), /profiles\.p\.kernel: .*holds " "/);
  t.same(problems({ ...base, profiles: { p: { arch: 'arm64', kernel: 'gen/{{generation}}/Image', bootargs: 'console=ttyS0,115200 root=${rootdev} lanha.node={{name}}' } } }), [], 'U-Boot variables and commas in bootargs are fine');
  t.match(problems({ ...base, profiles: { p: { arch: 'arm64', kernel: 'Image', kernle: 'x' } } }).join('\n'), /profiles\.p/);
  t.match(problems({ ...base, boot: { defaultProfile: 'nope' } }).join('\n'), /boot\.defaultProfile: "nope" is not a profile/);
  t.match(problems({ node: { name: 'a' }, boot: {} }).join('\n'), /boot\.root: .*no tftp: block/);
  t.match(problems({ ...base, boot: { files: { uboot: ['../x'] } } }).join('\n'), /boot\.files\.uboot\[0\]/);
  const parsed = bootConfig.parse({});
  t.same(parsed.files, { uboot: ['boot.scr.uimg', 'boot.scr'], pxelinux: ['pxelinux.cfg'], ipxe: ['boot.ipxe'] });
  t.equal(parsed.http !== false && parsed.http.port, 8080);
  t.equal(bootConfig.parse({ http: false }).http, false);
});

t.test("the examples' profiles render for a new node: no generation yet, no group", async (t) => {
  // The site example's pi4 bootargs had a bare {{generation}}: every Pi of a new site got TFTP
  // ERROR 0 for its boot.scr.uimg until a rootfs generation was deployed to it.
  for (const file of ['examples/single-node.yaml', 'examples/site.yaml']) {
    const config = lanhaConfig.parse(parse(readFileSync(repoPath(file), 'utf8')));
    for (const [profile, p] of Object.entries(config.profiles ?? {})) {
      for (const kind of ['uboot', 'ipxe', 'pxelinux'] as const) {
        const r = renderBootFile(kind, { name: 'new01', mac: '52:54:00:00:00:42', ip: '10.20.0.42', profile }, config.profiles!, new ProfileTemplates(), context);
        t.ok(r.ok, `${file} profile ${profile} (${p.arch}) ${kind}: ${r.ok ? 'renders' : renderErrorText(r.error)}`);
      }
    }
  }
});
