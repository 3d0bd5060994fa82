import { createServer } from 'node:net';

/** A loopback TCP port free right now (the kernel's pick), for a server a test starts next. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
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
