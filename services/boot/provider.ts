import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import type { Clock } from '../../lib/clock.js';
import { Counters } from '../../lib/counters.js';
import { checkName } from '../tftp/paths.js';
import type { BootConfig, ProfilesConfig } from './config.js';
import {
  imageTimeS, isUnknown, ProfileTemplates, renderBootFile, renderErrorText, renderUnknown,
  type BootFileKind, type RenderContext, type RenderResult, type Resolve,
} from './render.js';

// Boot files rendered per asking client, for TFTP and the boot HTTP listener alike: which names
// are virtual, who asks (resolve), render, and the last good file per node and name. A render
// error is logged (rate-limited) and the node gets its last good file, so a template typo made
// while a rack boots does not strand the nodes that already booted once.

export type BootLookup =
  /** Not a boot file name (or a pxelinux name for someone else): serve from disk as usual. */
  | { kind: 'none' }
  | { kind: 'file'; name: string; bytes: Buffer; mac?: string; node?: string; stale: boolean }
  /** Rendering failed and there is no last good file: TFTP ERROR / HTTP 500 with this text. */
  | { kind: 'error'; name: string; message: string; mac?: string };

/** One rendering for one client: a node's file (node set) or an unknown client's script. */
export interface RenderedFor {
  name: string;
  kind: BootFileKind;
  result: RenderResult;
  mac?: string;
  node?: string;
  profile?: string;
}

/** What TFTP and HTTP need of the boot files. */
export interface BootFileSource {
  lookup(requested: string, clientIp: string, localAddress: string): BootLookup;
}

/** The `node.boot` event detail of one served file: its name, size and transfer time. */
export function bootEventDetail(file: string, bytes: number, ms: number): string {
  return `${file} (${bytes} bytes, ${ms} ms)`;
}

export interface BootFilesOptions {
  boot: BootConfig;
  profiles: ProfilesConfig;
  resolve: Resolve;
  log: Logger;
  clock: Clock;
  /** The VIP without its prefix, when the site has one: what firmware should talk to. */
  vip?: string | undefined;
  /** The boot HTTP listener's port, when it runs (for {{http_base}}). */
  httpPort?: number | undefined;
}

/** Last good files kept (per node and name); the oldest goes first beyond this. */
const LAST_GOOD_MAX = 4096;
const MAC_FILE = /^01-([0-9a-f]{2}(?:-[0-9a-f]{2}){5})$/;

export class BootFiles implements BootFileSource {
  readonly counters = new Counters();
  readonly #boot: BootConfig;
  readonly #profiles: ProfilesConfig;
  readonly #resolve: Resolve;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #vip: string | undefined;
  #httpPort: number | undefined;
  readonly #templates = new ProfileTemplates();
  readonly #limiter = new LogLimiter(60_000, 3);
  readonly #lastGood = new Map<string, Buffer>();

  constructor(options: BootFilesOptions) {
    this.#boot = options.boot;
    this.#profiles = options.profiles;
    this.#resolve = options.resolve;
    this.#log = options.log;
    this.#clock = options.clock;
    this.#vip = options.vip;
    this.#httpPort = options.httpPort;
  }

  /** The HTTP listener's port once it is bound (tests use port 0). */
  set httpPort(port: number | undefined) { this.#httpPort = port; }

  /** The kind of boot file a (checked, relative) name is, or null when it is an ordinary file. */
  kindOf(path: string): { kind: BootFileKind; mac?: string } | null {
    const files = this.#boot.files;
    if (files.uboot.includes(path)) return { kind: 'uboot' };
    if (files.ipxe.includes(path)) return { kind: 'ipxe' };
    for (const pxelinux of files.pxelinux) {
      const dir = `${pxelinux}/`;
      if (!path.startsWith(dir)) continue;
      const rest = path.slice(dir.length).toLowerCase();
      if (rest === 'default') return { kind: 'pxelinux' };
      const m = MAC_FILE.exec(rest);
      if (m) return { kind: 'pxelinux', mac: m[1]!.replaceAll('-', ':') };
    }
    return null;
  }

  /**
   * The boot file for a request of `requested` by `clientIp`, which reached us on `localAddress`.
   * `none` for names that are not boot files: the caller serves them from disk.
   */
  lookup(requested: string, clientIp: string, localAddress: string): BootLookup {
    const rendered = this.#render(requested, clientIp, localAddress);
    if (rendered === null) return { kind: 'none' };
    const { name, result, mac, node, profile } = rendered;
    if (node === undefined) {
      this.counters.inc('boot.unknown_served');
      if (this.#limiter.allow(`unknown ${mac ?? clientIp}`, this.#clock.monotonicMs())) {
        this.#log.info({ event: 'boot.unknown', client: clientIp, mac: mac ?? null, file: name }, 'a client that is not in the inventory asked for a boot file');
      }
    }
    return this.#result(result, name, clientIp, mac, node, profile);
  }

  /** What `lookup` would render for this client now, without logging or touching the last good files (`lanctl boot render`). */
  preview(requested: string, clientIp: string, localAddress: string): RenderedFor | null {
    return this.#render(requested, clientIp, localAddress);
  }

  #render(requested: string, clientIp: string, localAddress: string): RenderedFor | null {
    const checked = checkName(requested);
    if (!checked.ok) return null;
    const name = checked.path;
    const wanted = this.kindOf(name);
    if (wanted === null) return null;
    const resolved = this.#resolve(clientIp);
    const context = this.#context(name, localAddress, imageTimeS(resolved));
    if (isUnknown(resolved)) {
      if (!this.#boot.unknown) return null;
      const result = renderUnknown(wanted.kind, resolved, context);
      if (result === null) return null;
      return { name, kind: wanted.kind, result, ...(resolved.mac === undefined ? {} : { mac: resolved.mac }) };
    }
    // pxelinux asks 01-<its MAC> first: another MAC's menu is not ours to render (disk, or not found).
    if (wanted.mac !== undefined && wanted.mac !== resolved.mac) return null;
    const result = renderBootFile(wanted.kind, resolved, this.#profiles, this.#templates, context);
    return { name, kind: wanted.kind, result, mac: resolved.mac, node: resolved.name, profile: resolved.profile };
  }

  #context(file: string, localAddress: string, timeS: number): RenderContext {
    const server = this.#vip ?? localAddress;
    return {
      server,
      httpBase: this.#httpPort === undefined ? undefined : `http://${server}:${this.#httpPort}`,
      file,
      timeS,
      bytesMax: this.#boot.scriptBytesMax,
    };
  }

  #result(result: RenderResult, name: string, clientIp: string, mac: string | undefined, node: string | undefined, profile: string | undefined): BootLookup {
    // Per node, MAC and name: a board whose MAC now belongs to another node never gets the old node's file.
    const key = `${node ?? ''}|${mac ?? clientIp}|${name}`;
    const who = { ...(mac === undefined ? {} : { mac }), ...(node === undefined ? {} : { node }) };
    if (result.ok) {
      this.counters.inc('boot.rendered');
      if (mac !== undefined && node !== undefined) this.#remember(key, result.bytes);
      return { kind: 'file', name, bytes: result.bytes, stale: false, ...who };
    }
    this.counters.inc('boot.render_failed');
    const message = renderErrorText(result.error);
    const last = this.#lastGood.get(key);
    if (this.#limiter.allow(`render ${profile ?? ''} ${result.error.kind}`, this.#clock.monotonicMs())) {
      this.#log.warn({ event: 'boot.render.failed', client: clientIp, ...who, file: name, profile: profile ?? null, error: result.error, servedLastGood: last !== undefined }, `boot file not rendered: ${message}`);
    }
    if (last !== undefined) {
      this.counters.inc('boot.served_last_good');
      return { kind: 'file', name, bytes: last, stale: true, ...who };
    }
    return { kind: 'error', name, message, ...(mac === undefined ? {} : { mac }) };
  }

  #remember(key: string, bytes: Buffer): void {
    this.#lastGood.delete(key);
    this.#lastGood.set(key, bytes);
    if (this.#lastGood.size > LAST_GOOD_MAX) this.#lastGood.delete(this.#lastGood.keys().next().value!);
  }

  status(): Record<string, unknown> {
    return { counters: this.counters.toJSON(), lastGood: this.#lastGood.size, profiles: Object.keys(this.#profiles) };
  }
}
