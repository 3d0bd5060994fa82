import { BootEventLimiter } from '../../cluster/boot-events.js';
import { realpath } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { formatIpv4, parseIpv4 } from '../../lib/ipv4.js';
import { serviceAddresses } from '../../lib/listen.js';
import type { RunningService, ServiceContext } from '../contract.js';
import { BootFiles, bootEventDetail } from './provider.js';
import { BootHttpServer, type ServedFile } from './http.js';
import { boundLease, inventoryResolver, nodeNameFrom, reservationResolver, type GenerationOf } from './resolve.js';
import { renderErrorText } from './render.js';
import type { Resolve } from './render.js';

// The boot service: boot files rendered per asking client (TFTP consults it before its disk; it
// starts before TFTP for that) and the read-only boot HTTP listener. Wiring only; the logic is in
// provider.ts, render.ts and http.ts.

function reservationsOf(context: ServiceContext): ReadonlyArray<{ mac?: string | undefined; ip: number; hostname?: string | undefined }> {
  return (context.config.dhcp?.subnets ?? []).flatMap((s) => s.reservations);
}

/**
 * Who is asking: the inventory (the lease + DHCP reservation fallback while it is empty). The
 * generation is the deploy module's gated one (`bootGeneration`: N only once its sync to the node
 * was verified, else N-1), else the one the node reported running.
 */
function resolverFor(context: ServiceContext): Resolve {
  const fsm = context.state.fsm;
  const reservations = reservationsOf(context);
  const defaultProfile = context.config.boot?.defaultProfile;
  const generationOf: GenerationOf = (node) => fsm.rootfs.bootGeneration(node.name) ?? node.runningGeneration;
  return inventoryResolver(fsm, fsm.inventory, defaultProfile, generationOf, reservationResolver(fsm, reservations, defaultProfile), (id) => fsm.rootfs.generation(id)?.committedAt);
}

export async function startBoot(context: ServiceContext): Promise<RunningService> {
  const boot = context.config.boot!;
  const rootText = boot.root ?? context.config.tftp?.root;
  // lib/config.ts refuses a boot block with neither; this is the programmer-error guard.
  if (rootText === undefined) throw new Error('boot: no root (boot.root or tftp.root)');
  const rootReal = await realpath(resolvePath(rootText));
  const vip = context.config.vip === undefined ? undefined : formatIpv4(context.config.vip.address.address);
  const bootFiles = new BootFiles({
    boot,
    profiles: context.config.profiles ?? {},
    resolve: resolverFor(context),
    log: context.log,
    clock: context.clock,
    vip,
  });
  const state = context.state;
  const bootEvents = new BootEventLimiter();
  const served = (file: ServedFile): void => {
    // Compute-node boot progress, as TFTP records it (leader only: followers serve, the leader writes),
    // bounded per MAC and per second: a client fetching in a loop (ranges, HEAD) is not a log entry per fetch.
    if (file.mac !== undefined && state.isLeader() && bootEvents.allow(file.mac, context.clock.monotonicMs())) {
      state.propose({ type: 'node.boot', mac: file.mac, event: 'http', detail: bootEventDetail(file.file, file.bytes, file.ms) }).catch(() => undefined);
    }
  };
  let http: BootHttpServer | undefined;
  if (boot.http !== false) {
    http = new BootHttpServer({
      config: boot.http,
      addresses: serviceAddresses(context.config, boot.http.listen),
      rootReal,
      bootFiles,
      log: context.log,
      clock: context.clock,
      macOf: (client) => boundLease(state.fsm, client)?.mac,
      served,
    });
    await http.start();
    bootFiles.httpPort = http.port();
  }
  const status = () => ({
    listening: http?.listening() ?? [],
    root: rootReal,
    files: boot.files,
    ...bootFiles.status(),
    ...(http === undefined ? {} : { http: http.status() }),
  });
  const reservations = reservationsOf(context);
  /** A node's address by name: its reserved IP, else its bound lease; the config's reservations while the inventory is empty. */
  const addressOf = (name: string): string | undefined => {
    const node = state.fsm.inventory.byName(name);
    if (node !== undefined) {
      if (node.ip !== undefined) return formatIpv4(node.ip);
      const lease = state.fsm.liveLeaseByMac(node.mac, state.fsm.lastAt);
      return lease === undefined ? undefined : formatIpv4(lease.ip);
    }
    const reservation = reservations.find((r) => nodeNameFrom(r.hostname) === name);
    return reservation === undefined ? undefined : formatIpv4(reservation.ip);
  };
  const serverAddress = vip ?? (context.config.node.address === undefined ? '127.0.0.1' : formatIpv4(context.config.node.address));
  return {
    name: 'boot',
    bootFiles,
    status,
    stop: async () => { await http?.stop(); },
    addAddress: async (address) => { await http?.addAddress(address); },
    removeAddress: async (address) => { await http?.removeAddress(address); },
    routes: {
      'GET /v1/boot': () => ({ status: 200, body: status() }),
      // `lanctl boot render NODE|IP [--file NAME]`: what that node would get now (no last good file, no log).
      'GET /v1/boot/render': ({ query }) => {
        const file = query.get('file') ?? boot.files.uboot[0] ?? 'boot.scr.uimg';
        const who = query.get('node') ?? '';
        const ip = parseIpv4(who) !== null ? who : addressOf(who);
        if (ip === undefined) return { status: 404, body: { error: `no node or address "${who}" (not in the inventory, or it has no reserved address and no lease)` } };
        const preview = bootFiles.preview(file, ip, serverAddress);
        if (preview === null) return { status: 404, body: { error: `"${file}" is not a boot file for ${who} (boot.files names it? pxelinux: only its own 01-<mac>); the disk would answer` } };
        const { result } = preview;
        if (!result.ok) return { status: 422, body: { error: renderErrorText(result.error) } };
        return {
          status: 200,
          body: { file: preview.name, kind: preview.kind, ip, node: preview.node ?? null, mac: preview.mac ?? null, profile: preview.profile ?? null, text: result.text, bytes: result.bytes.toString('base64') },
        };
      },
    },
  };
}
