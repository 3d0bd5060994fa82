import { z } from 'zod';
import { duration, listenAddress, port } from '../../lib/schema.js';
import { checkName, isFileName } from '../tftp/paths.js';
import { compileTemplate, TEMPLATE_VARIABLES, unsafeChar, type TemplateVariable } from './template.js';
import { PROFILE_ARCHES } from './arches.js';

// The `profiles:` block (how a kind of node boots: kernel, initrd, device tree, kernel command
// line, and optional template overrides) and the `boot:` block (which file names are rendered per
// client, size limit, the boot HTTP listener). Templates are compiled here so a typo is a config
// error at start-up, with its key path, not a render error at 3 a.m.

// PROFILE_ARCHES lives in arches.ts (no schema there: the daemon's services import it without loading
// zod); kept here for the config's other readers.
export { PROFILE_ARCHES, type ProfileArch } from './arches.js';

/** Variables the profile's own fields (kernel, initrd, dtb, bootargs) may use: not each other. */
const FIELD_VARIABLES = TEMPLATE_VARIABLES.filter((v) => !['kernel', 'initrd', 'dtb', 'bootargs', 'boot_command'].includes(v));

/**
 * A profile field's template; with `insertedAs`, its own text (outside tags) must hold only what
 * that variable may (the renderer would refuse every node's file otherwise: better now than at boot).
 */
function templateText(fieldVariablesOnly: boolean, insertedAs?: TemplateVariable): z.ZodType<string, string> {
  return z.string().superRefine((text, ctx) => {
    const compiled = compileTemplate(text);
    if (!compiled.ok) {
      ctx.addIssue({ code: 'custom', message: `is not a valid template: ${compiled.error}` });
      return;
    }
    const char = insertedAs === undefined ? null : unsafeChar(insertedAs, text.replace(/\{\{[^}]*\}\}/g, ''));
    if (char !== null) {
      ctx.addIssue({ code: 'custom', message: `holds ${JSON.stringify(char)}, which a boot script would read as syntax (no quotes, backslash, ";", "|", "&", "<", ">" or backquote${insertedAs === 'bootargs' ? '' : ', no spaces or "$" in a path'})` });
      return;
    }
    if (fieldVariablesOnly) {
      const bad = [...compiled.template.variables].filter((v) => !FIELD_VARIABLES.includes(v));
      if (bad.length > 0) ctx.addIssue({ code: 'custom', message: `uses {{${bad[0]}}}, which a profile field cannot use (allowed: ${FIELD_VARIABLES.join(', ')})` });
    }
  });
}

/** A file below the boot root; it may hold variables (`gen/{{generation}}/Image`). */
const bootPath = (field: 'kernel' | 'initrd' | 'dtb') => templateText(true, field).refine((s) => s.includes('{{') || isFileName(s), {
  message: 'is not a relative path to a file inside the boot root (no "..", no leading "/", no trailing "/")',
});

const profileName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, { message: 'is not a profile name (letters, digits, "_", ".", "-")' });

export const profileConfig = z.object({
  arch: z.enum(PROFILE_ARCHES),
  kernel: bootPath('kernel'),
  initrd: bootPath('initrd').optional(),
  dtb: bootPath('dtb').optional(),
  /** The kernel command line; may use {{name}}, {{server}}, {{generation}} and the like. */
  bootargs: templateText(true, 'bootargs').default(''),
  /** iPXE fetches kernel and initrd over the boot HTTP listener (false: over TFTP). */
  http: z.boolean().default(true),
  /** Template overrides of the built-in boot files (services/boot/README.md lists the variables). */
  uboot: templateText(false).optional(),
  ipxe: templateText(false).optional(),
  pxelinux: templateText(false).optional(),
}).strict();

export const profilesConfig = z.record(profileName, profileConfig);

const fileName = z.string().min(1).refine((s) => isFileName(s) && !s.includes('{{'), { message: 'is not a plain file name inside the root (no "..", no leading or trailing "/")' });
/** A directory below the root (pxelinux.cfg); a trailing "/" is the same directory. */
const directoryPath = (name: string): string => { const c = checkName(name); return c.ok ? c.path.replace(/\/$/, '') : name; };
const dirName = z.string().min(1).refine((s) => checkName(s).ok && !s.includes('{{'), { message: 'is not a plain directory name inside the root (no "..", no leading "/")' });

export const bootHttpConfig = z.object({
  port: port.default(8080),
  /** Addresses to listen on (default: the node address and loopback; the VIP while held). */
  listen: z.array(listenAddress).optional(),
  /** Open connections at once; more are closed at once. */
  maxConnections: z.number().int().min(1).max(10_000).default(64),
  /** Of those, open at once from one address: a stalled or runaway host cannot take every slot (iPXE uses one). */
  maxConnectionsPerSource: z.number().int().min(1).max(10_000).default(8),
  /** Time to receive a request's headers. */
  headersTimeout: duration.refine((ms) => ms >= 100, { message: 'is under 100ms' }).default(10_000),
  /** Time to receive a whole request. */
  requestTimeout: duration.refine((ms) => ms >= 100, { message: 'is under 100ms' }).default(30_000),
  /** A connection with no traffic either way for this long is closed (a stalled reader). */
  idleTimeout: duration.refine((ms) => ms >= 100, { message: 'is under 100ms' }).default(60_000),
}).strict().refine((c) => c.headersTimeout <= c.requestTimeout, { path: ['headersTimeout'], message: 'is longer than requestTimeout (the headers are part of the request)' });

export const bootConfig = z.object({
  /** Kernels, initrds and device trees live here (default: tftp.root). */
  root: z.string().min(1).optional(),
  /** The profile of a node that has none. */
  defaultProfile: profileName.optional(),
  files: z.object({
    /** Names U-Boot asks for: served as legacy script images (U-Boot's distro boot asks both). */
    uboot: z.array(fileName).default(['boot.scr.uimg', 'boot.scr']),
    /**
     * pxelinux's directories: `<dir>/01-<mac-with-dashes>` and `<dir>/default` in each. One name or a
     * list: a site booting BIOS and UEFI machines from one root has one per loader
     * (`[bios/pxelinux.cfg, efi64/pxelinux.cfg]`: pxelinux looks beside the file it was loaded from).
     */
    pxelinux: z.union([dirName, z.array(dirName).min(1).max(16)]).default('pxelinux.cfg')
      .transform((v) => [...new Set((Array.isArray(v) ? v : [v]).map(directoryPath))]),
    /** Names iPXE scripts are asked under. */
    ipxe: z.array(fileName).default(['boot.ipxe']),
  }).strict().default({ uboot: ['boot.scr.uimg', 'boot.scr'], pxelinux: ['pxelinux.cfg'], ipxe: ['boot.ipxe'] }),
  /** A rendered file larger than this is a render error (the node keeps its last good file). */
  scriptBytesMax: z.number().int().min(256).max(1 << 20).default(65536),
  /** Unknown MACs get a script that prints the `lanctl nodes accept` line and retries (false: file not found). */
  unknown: z.boolean().default(true),
  /** The read-only boot HTTP listener (iPXE kernels); false turns it off. */
  http: z.union([z.literal(false), bootHttpConfig]).default(() => bootHttpConfig.parse({})),
}).strict();

export type ProfileConfig = z.output<typeof profileConfig>;
export type ProfilesConfig = z.output<typeof profilesConfig>;
export type BootConfig = z.output<typeof bootConfig>;
export type BootHttpConfig = z.output<typeof bootHttpConfig>;
