import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/** A loopback TCP port free right now (the kernel's pick), for a server a test starts next. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/** `count` distinct loopback TCP ports free right now: each stays bound until all are picked, so no two are the same. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/**
 * `count` distinct UDP ports free right now on every address (bound on the wildcard, all at once),
 * for a service that binds UDP (DHCP). freePort probes TCP on loopback only; a random pick from a
 * high range could meet another test file's socket.
 */
export async function freeUdpPorts(count: number): Promise<number[]> {
  const sockets = await Promise.all(Array.from({ length: count }, () => new Promise<ReturnType<typeof createSocket>>((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '0.0.0.0', () => resolve(s));
  })));
  const ports = sockets.map((s) => s.address().port);
  await Promise.all(sockets.map((s) => new Promise((r) => s.close(() => r(undefined)))));
  return ports;
}

/** One UDP port free right now on every address (freeUdpPorts). */
export async function freeUdpPort(): Promise<number> {
  return (await freeUdpPorts(1))[0]!;
}

/**
 * A parsed config with the listed service blocks' ports set to 0, so a test binds ports the kernel
 * picks (no races). A config file cannot say `port: 0` (lanctl config check refuses it: no client
 * could find such a port); in-process tests take this way round instead.
 */
export function ephemeralPorts<C extends object>(config: C, blocks: ReadonlyArray<'dns' | 'tftp' | 'ntp' | 'dhcp'> = ['dns', 'tftp', 'ntp', 'dhcp']): C {
  const out = { ...config } as Record<string, unknown>;
  for (const b of blocks) {
    const block = out[b];
    if (block !== undefined && block !== null && typeof block === 'object') out[b] = { ...block, port: 0 };
  }
  return out as C;
}
