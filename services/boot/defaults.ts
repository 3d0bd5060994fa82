import { compileTemplate, type Template } from './template.js';
import { PROFILE_ARCHES, type ProfileArch } from './arches.js';

// The built-in boot file templates (a profile's `uboot:`, `ipxe:`, `pxelinux:` replace them).
// U-Boot's default environment gives up on the first TFTP error, and a failover or crash of the
// serving node mid-boot would strand the board; so every load here is retried a bounded number of
// times with a pause, and a final failure prints why and resets the board instead of hanging.

/** Tries per file and the pause between them. */
export const LOAD_TRIES = 5;
export const LOAD_PAUSE_S = 3;
/** How long a board waits before `reset` after giving up, and before an unknown MAC asks again. */
export const GIVE_UP_PAUSE_S = 10;
export const UNKNOWN_RETRY_S = 30;

const tries = Array.from({ length: LOAD_TRIES }, (_, i) => String(i + 1)).join(' ');

/** A U-Boot hush loop: load `file` to `address`, at most LOAD_TRIES times; `after` runs on success. */
function ubootLoad(address: string, file: string, after = ''): string {
  return `setenv lh_ok 0
for lh_try in ${tries}; do
  if test "\${lh_ok}" = 0; then
    if tftpboot ${address} ${file}; then
      setenv lh_ok 1${after === '' ? '' : `\n      ${after}`}
    else
      echo "lanha: loading ${file} failed (try \${lh_try} of ${LOAD_TRIES})"
      sleep ${LOAD_PAUSE_S}
    fi
  fi
done
if test "\${lh_ok}" = 0; then
  echo "lanha: could not load ${file} from \${serverip}; resetting in ${GIVE_UP_PAUSE_S} s"
  sleep ${GIVE_UP_PAUSE_S}
  reset
fi
`;
}

// netretry: "no" fails at the first error, "yes" retries forever inside one tftpboot (a dead server
// would hang the board there, never reaching the reset below); "once" tries the other interfaces
// once, which U-Boot's README recommends for scripts that run their own retries. Shorter TFTP
// timeouts (2 s x 5 instead of 5 s x 10) bound one try to about 10 s against a dead server.
export const UBOOT_TEMPLATE = `# lanha boot script for {{name}} ({{mac}}, {{ip}}), profile {{profile}}{{#generation}}, generation {{generation}}{{/generation}}
# Rendered per request by lanha; U-Boot runs it with "source".
`;

/** The built-in U-Boot script's body: the loads, the boot command, the reset when it returns. */
const UBOOT_BODY = `echo "lanha: booting {{name}} with profile {{profile}}"
setenv netretry once
setenv tftptimeout 2000
setenv tftptimeoutcountmax 5
${ubootLoad('${kernel_addr_r}', '{{kernel}}')}{{#initrd}}${ubootLoad('${ramdisk_addr_r}', '{{initrd}}', 'setenv lh_initrd_size ${filesize}')}{{/initrd}}{{#dtb}}${ubootLoad('${fdt_addr_r}', '{{dtb}}', 'setenv lh_fdt ${fdt_addr_r}')}{{/dtb}}{{^dtb}}setenv lh_fdt \${fdtcontroladdr}
{{/dtb}}{{#bootargs}}setenv bootargs "{{bootargs}}"
{{/bootargs}}{{^bootargs}}setenv bootargs
{{/bootargs}}{{boot_command}} \${kernel_addr_r} {{#initrd}}\${ramdisk_addr_r}:\${lh_initrd_size}{{/initrd}}{{^initrd}}-{{/initrd}} \${lh_fdt}
echo "lanha: {{boot_command}} returned, the kernel did not start; resetting in ${GIVE_UP_PAUSE_S} s"
sleep ${GIVE_UP_PAUSE_S}
reset
`;

/**
 * ARM boards run a 32-bit or a 64-bit U-Boot (a Pi 3 either), and a profile of the other one
 * cannot boot: a 32-bit U-Boot has no `booti`, a 64-bit one no `bootz` for a zImage. The script
 * would reach the reset after the boot command, and the board would ask again and loop for ever.
 * The script checks U-Boot's `${cpu}` (armv8 for every 64-bit ARM build; armv7, arm1176 ... for
 * 32-bit ones) first, and on a mismatch prints why, names the fix and returns to U-Boot without
 * a reset: the board stops at its prompt (distro boot goes on to its next boot target, if any).
 */
const UBOOT_ARCH_GUARD: Partial<Record<ProfileArch, { mismatch: string; wanted: string; other: string }>> = {
  arm64: { mismatch: 'test -n "${cpu}" -a "${cpu}" != armv8', wanted: 'arm64 (booti)', other: 'arm' },
  arm: { mismatch: 'test "${cpu}" = armv8', wanted: '32-bit ARM (bootz)', other: 'arm64' },
};

/** The built-in U-Boot script for profiles of `arch`: the body, behind the guard where there is one. */
export function ubootTemplate(arch: ProfileArch): string {
  const guard = UBOOT_ARCH_GUARD[arch];
  if (guard === undefined) return UBOOT_TEMPLATE + UBOOT_BODY;
  return `${UBOOT_TEMPLATE}if ${guard.mismatch}; then
  echo "lanha: profile {{profile}} boots ${guard.wanted}, but this U-Boot is built for \${cpu}"
  echo "lanha: not booting {{name}}: give it a profile with arch: ${guard.other} (lanctl nodes), or run a U-Boot built for {{arch}}"
else
${UBOOT_BODY}fi
`;
}

export const UBOOT_UNKNOWN_TEMPLATE = `# lanha: this board is not in the inventory
echo "lanha: this board (MAC {{#mac}}{{mac}}{{/mac}}{{^mac}}\${ethaddr}{{/mac}}, address \${ipaddr}) is not in the inventory."
echo "lanha: to add it, run on a LAN node:"
echo "  lanctl nodes accept {{#mac}}{{mac}}{{/mac}}{{^mac}}\${ethaddr}{{/mac}} NAME"
echo "lanha: asking again in ${UNKNOWN_RETRY_S} s"
sleep ${UNKNOWN_RETRY_S}
reset
`;

/** An iPXE fetch with bounded tries: labels `<label>1..N`, success goes to `<label>-ok`. */
function ipxeLoad(label: string, command: string, file: string): string {
  const lines: string[] = [];
  for (let i = 1; i <= LOAD_TRIES; i++) {
    lines.push(`:${label}${i}`);
    lines.push(`${command} && goto ${label}-ok || echo lanha: loading ${file} failed (try ${i} of ${LOAD_TRIES})`);
    if (i < LOAD_TRIES) lines.push(`sleep ${LOAD_PAUSE_S}`);
  }
  lines.push(`echo lanha: could not load ${file}, rebooting in ${GIVE_UP_PAUSE_S} s`);
  lines.push(`sleep ${GIVE_UP_PAUSE_S}`);
  lines.push('reboot || exit 1');
  lines.push(`:${label}-ok`);
  return `${lines.join('\n')}\n`;
}

function ipxeTemplate(base: string): string {
  return `#!ipxe
# lanha boot script for {{name}} ({{mac}}, {{ip}}), profile {{profile}}{{#generation}}, generation {{generation}}{{/generation}}
echo lanha: booting {{name}} with profile {{profile}}
${ipxeLoad('kernel', `kernel --name kernel ${base}/{{kernel}}{{#initrd}} initrd=initrd{{/initrd}}{{#bootargs}} {{bootargs}}{{/bootargs}}`, '{{kernel}}')}{{#initrd}}${ipxeLoad('initrd', `initrd --name initrd ${base}/{{initrd}}`, '{{initrd}}')}{{/initrd}}boot || echo lanha: the kernel did not start
echo lanha: rebooting in ${GIVE_UP_PAUSE_S} s
sleep ${GIVE_UP_PAUSE_S}
reboot || exit 1
`;
}

/** iPXE fetching kernel and initrd over the boot HTTP listener (profile `http: true`). */
export const IPXE_HTTP_TEMPLATE = ipxeTemplate('{{http_base}}');
/** iPXE fetching them over TFTP (profile `http: false`). */
export const IPXE_TFTP_TEMPLATE = ipxeTemplate('{{tftp_base}}');

export const IPXE_UNKNOWN_TEMPLATE = `#!ipxe
:retry
echo lanha: this machine (MAC {{#mac}}{{mac}}{{/mac}}{{^mac}}\${netX/mac}{{/mac}}) is not in the inventory.
echo lanha: to add it, run on a LAN node:
echo   lanctl nodes accept {{#mac}}{{mac}}{{/mac}}{{^mac}}\${netX/mac}{{/mac}} NAME
echo lanha: asking again in ${UNKNOWN_RETRY_S} s
sleep ${UNKNOWN_RETRY_S}
chain --replace --autofree {{file}} || goto retry
`;

export const PXELINUX_TEMPLATE = `# lanha boot menu for {{name}} ({{mac}}, {{ip}}), profile {{profile}}{{#generation}}, generation {{generation}}{{/generation}}
DEFAULT {{name}}
PROMPT 0
TIMEOUT 0
LABEL {{name}}
  KERNEL {{kernel}}
{{#initrd}}  INITRD {{initrd}}
{{/initrd}}{{#dtb}}  FDT {{dtb}}
{{/dtb}}{{#bootargs}}  APPEND {{bootargs}}
{{/bootargs}}`;

function compiled(text: string): Template {
  const result = compileTemplate(text);
  if (!result.ok) throw new Error(`built-in template does not compile: ${result.error}`);
  return result.template;
}

/** The built-in templates, compiled once. */
export const DEFAULT_TEMPLATES = {
  uboot: Object.fromEntries(PROFILE_ARCHES.map((arch) => [arch, compiled(ubootTemplate(arch))])) as Record<ProfileArch, Template>,
  ubootUnknown: compiled(UBOOT_UNKNOWN_TEMPLATE),
  ipxeHttp: compiled(IPXE_HTTP_TEMPLATE),
  ipxeTftp: compiled(IPXE_TFTP_TEMPLATE),
  ipxeUnknown: compiled(IPXE_UNKNOWN_TEMPLATE),
  pxelinux: compiled(PXELINUX_TEMPLATE),
} as const;
