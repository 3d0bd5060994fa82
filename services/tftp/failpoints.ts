// Test hooks of the TFTP service, turned on from the environment only (LANHA_FAILPOINTS, as the
// WAL's failpoints in cluster/raft/wal.ts); the server logs `tftp.failpoints` (warn) when one is on.

/**
 * Test hook, from the environment only (LANHA_FAILPOINTS, as the WAL's failpoints):
 * `tftp.worker.hang=NAME` makes the worker given a request for NAME loop without ever yielding, as a
 * bug would; the main thread must route around it and end it (server.ts, hung workers).
 */
export function hangFailpoint(text = process.env['LANHA_FAILPOINTS']): string | undefined {
  for (const part of (text ?? '').split(',')) {
    const [name, value] = part.split('=');
    if (name?.trim() === 'tftp.worker.hang' && value !== undefined && value.trim() !== '') return value.trim();
  }
  return undefined;
}
