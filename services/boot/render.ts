import { isFileName } from '../tftp/paths.js';
import { compileTemplate, renderTemplate, type Rendered, type Template, type TemplateValues, type TemplateVariable } from './template.js';
import { DEFAULT_TEMPLATES } from './defaults.js';
import { writeScriptImage, type UImageArchName } from './uimage.js';
import type { ProfileArch, ProfileConfig, ProfilesConfig } from './config.js';

// Rendering one boot file for one client: the node (BootTarget), its profile and where it asked
// (server address, HTTP base) in; the file's bytes or a render error out. Pure: the image time is
// passed in, nothing is read from disk or clock here. provider.ts keeps the last good file.

/** A known node, as the inventory (or the lease fallback) gives it (FLEET.md shape). */
export interface BootTarget {
  name: string;
  /** Lower-case aa:bb:cc:dd:ee:ff. */
  mac: string;
  /** Dotted IPv4. */
  ip: string;
  profile: string;
  group?: string;
  generation?: string;
  /**
   * Log time (ms) of the last change that shapes this node's files: its inventory entry or its
   * generation's commit. The U-Boot image time comes from it, never from a clock, so both LAN nodes
   * serve byte-identical images. Absent (config-reservation nodes): image time 0.
   */
  changedAtMs?: number;
}

export interface UnknownClient {
  unknown: true;
  mac?: string;
}

export type Resolved = BootTarget | UnknownClient;
export type Resolve = (clientIp: string) => Resolved;

export function isUnknown(r: Resolved): r is UnknownClient {
  return 'unknown' in r;
}

export type BootFileKind = 'uboot' | 'ipxe' | 'pxelinux';

export interface RenderContext {
  /** The address firmware should talk to: the VIP without prefix, else the address the request came to. */
  server?: string | undefined;
  /** `http://SERVER:PORT` of the boot HTTP listener, when it runs. */
  httpBase?: string | undefined;
  /** The requested file name (e.g. for an unknown MAC's `chain` back to itself). */
  file: string;
  /**
   * Image time for U-Boot script images, whole seconds: the node's `changedAtMs` (see imageTimeS),
   * not the time of rendering, or the two LAN nodes would serve different bytes.
   */
  timeS: number;
  /** Rendered files larger than this are errors. */
  bytesMax: number;
}

export type RenderError =
  | { kind: 'missing-variable'; variable: TemplateVariable; profile: string; field: string }
  | { kind: 'unsafe-value'; variable: TemplateVariable; profile: string; field: string; char: string }
  | { kind: 'unknown-profile'; profile: string }
  | { kind: 'no-profile'; profile: string }
  | { kind: 'bad-path'; profile: string; field: string; value: string }
  | { kind: 'too-large'; profile: string; bytes: number; bytesMax: number }
  | { kind: 'empty'; profile: string };

export type RenderResult = { ok: true; bytes: Buffer; text: string } | { ok: false; error: RenderError };

/** One line for logs and errors: what failed, for which profile, what to do. */
export function renderErrorText(error: RenderError): string {
  switch (error.kind) {
    case 'missing-variable':
      return `profile ${error.profile}: ${error.field} uses {{${error.variable}}}, which has no value for this node (set it, or wrap the line in {{#${error.variable}}}...{{/${error.variable}}})`;
    case 'unsafe-value':
      return `profile ${error.profile}: the value of {{${error.variable}}} in ${error.field} holds ${JSON.stringify(error.char)}, which is not allowed there (refused: it could add commands to the boot file)`;
    case 'no-profile':
      return 'the node has no profile and boot.defaultProfile is not set (give the node a profile, or set boot.defaultProfile)';
    case 'unknown-profile':
      return `profile ${error.profile} is not in the config's profiles: block (add it, or give the node another profile)`;
    case 'bad-path':
      return `profile ${error.profile}: ${error.field} renders to "${error.value}", which is not a path inside the boot root`;
    case 'too-large':
      return `profile ${error.profile}: the rendered file is ${error.bytes} octets, over boot.scriptBytesMax ${error.bytesMax}`;
    case 'empty':
      return `profile ${error.profile}: the rendered script is empty`;
  }
}

/** U-Boot's boot command for each architecture. */
export const BOOT_COMMAND: Record<ProfileArch, string> = { arm: 'bootz', arm64: 'booti', riscv64: 'booti', x86_64: 'zboot' };
const IMAGE_ARCH: Record<ProfileArch, UImageArchName> = { arm: 'arm', arm64: 'arm64', riscv64: 'riscv', x86_64: 'x86_64' };

/** Compiled profile templates, built once per config (profile fields and overrides). */
export class ProfileTemplates {
  readonly #cache = new Map<string, Template>();

  get(text: string): Template {
    let template = this.#cache.get(text);
    if (template === undefined) {
      const compiled = compileTemplate(text);
      // Config validation compiled every template already; a failure here is a programmer error.
      if (!compiled.ok) throw new Error(`template does not compile: ${compiled.error}`);
      template = compiled.template;
      this.#cache.set(text, template);
    }
    return template;
  }
}

function mapError(result: Exclude<Rendered, { ok: true }>, profile: string, field: string): RenderError {
  return result.reason === 'missing'
    ? { kind: 'missing-variable', variable: result.variable, profile, field }
    : { kind: 'unsafe-value', variable: result.variable, profile, field, char: result.char };
}

function nodeValues(target: BootTarget, context: RenderContext): TemplateValues {
  const values: TemplateValues = {
    name: target.name, ip: target.ip, mac: target.mac, mac_dashes: target.mac.replaceAll(':', '-'),
    profile: target.profile, file: context.file,
  };
  if (target.group !== undefined) values.group = target.group;
  if (target.generation !== undefined) values.generation = target.generation;
  if (context.server !== undefined) {
    values.server = context.server;
    values.tftp_base = `tftp://${context.server}`;
  }
  if (context.httpBase !== undefined) values.http_base = context.httpBase;
  return values;
}

/** The template a file kind uses for a profile: its override, else the built-in one. */
function templateFor(kind: BootFileKind, profile: ProfileConfig, templates: ProfileTemplates): { template: Template; field: string } {
  switch (kind) {
    case 'uboot': return profile.uboot !== undefined ? { template: templates.get(profile.uboot), field: 'uboot' } : { template: DEFAULT_TEMPLATES.uboot[profile.arch], field: 'the built-in U-Boot script' };
    case 'pxelinux': return profile.pxelinux !== undefined ? { template: templates.get(profile.pxelinux), field: 'pxelinux' } : { template: DEFAULT_TEMPLATES.pxelinux, field: 'the built-in pxelinux menu' };
    case 'ipxe':
      if (profile.ipxe !== undefined) return { template: templates.get(profile.ipxe), field: 'ipxe' };
      return profile.http ? { template: DEFAULT_TEMPLATES.ipxeHttp, field: 'the built-in iPXE script' } : { template: DEFAULT_TEMPLATES.ipxeTftp, field: 'the built-in iPXE script' };
  }
}

function finish(kind: BootFileKind, text: string, name: string, arch: UImageArchName, profile: string, context: RenderContext): RenderResult {
  if (text.trim() === '') return { ok: false, error: { kind: 'empty', profile } };
  const bytes = kind === 'uboot'
    ? writeScriptImage({ script: text, name: `lanha ${name}`, timeS: context.timeS, arch })
    : Buffer.from(text, 'utf8');
  if (bytes.length > context.bytesMax) return { ok: false, error: { kind: 'too-large', profile, bytes: bytes.length, bytesMax: context.bytesMax } };
  return { ok: true, bytes, text };
}

/** The U-Boot image time of a client's files: the log time of its last change, 0 when there is none (unknown clients). */
export function imageTimeS(resolved: Resolved): number {
  const ms = isUnknown(resolved) ? 0 : resolved.changedAtMs ?? 0;
  return Math.min(0xffffffff, Math.max(0, Math.floor(ms / 1000)));
}

/** Renders a known node's boot file of `kind`. */
export function renderBootFile(kind: BootFileKind, target: BootTarget, profiles: ProfilesConfig, templates: ProfileTemplates, context: RenderContext): RenderResult {
  if (target.profile === '') return { ok: false, error: { kind: 'no-profile', profile: '(none)' } };
  const profile = Object.hasOwn(profiles, target.profile) ? profiles[target.profile] : undefined;
  if (profile === undefined) return { ok: false, error: { kind: 'unknown-profile', profile: target.profile } };
  const values = nodeValues(target, context);
  values.arch = profile.arch;
  values.boot_command = BOOT_COMMAND[profile.arch];
  // The profile's own fields first: they may use the node's variables (gen/{{generation}}/Image).
  for (const field of ['kernel', 'initrd', 'dtb', 'bootargs'] as const) {
    const text = profile[field];
    if (text === undefined) continue;
    const rendered = renderTemplate(templates.get(text), values);
    if (!rendered.ok) return { ok: false, error: mapError(rendered, target.profile, field) };
    if (field !== 'bootargs' && !isFileName(rendered.text)) return { ok: false, error: { kind: 'bad-path', profile: target.profile, field, value: rendered.text } };
    if (rendered.text !== '') values[field] = rendered.text;
  }
  const { template, field } = templateFor(kind, profile, templates);
  const rendered = renderTemplate(template, values);
  if (!rendered.ok) return { ok: false, error: mapError(rendered, target.profile, field) };
  return finish(kind, rendered.text, target.name, IMAGE_ARCH[profile.arch], target.profile, context);
}

/** The script for a client that is not in the inventory (U-Boot and iPXE only; pxelinux has none). */
export function renderUnknown(kind: BootFileKind, client: UnknownClient, context: RenderContext): RenderResult | null {
  if (kind === 'pxelinux') return null;
  const values: TemplateValues = { file: context.file };
  if (client.mac !== undefined) values.mac = client.mac;
  const template = kind === 'uboot' ? DEFAULT_TEMPLATES.ubootUnknown : DEFAULT_TEMPLATES.ipxeUnknown;
  const rendered = renderTemplate(template, values);
  if (!rendered.ok) return { ok: false, error: mapError(rendered, '(unknown node)', 'the unknown-node script') };
  return finish(kind, rendered.text, 'unknown node', 'arm', '(unknown node)', context);
}
