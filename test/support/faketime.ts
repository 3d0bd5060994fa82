import { existsSync } from 'node:fs';
import { join } from 'node:path';

// libfaketime (Debian package faketime): LD_PRELOAD'ed into a process, it moves what the process
// reads as the wall clock (Date.now(), bash's EPOCHREALTIME) by the offset in
// FAKETIME_TIMESTAMP_FILE, which can be rewritten at run time ("+3600s", "-3600s"; read at every
// clock read with FAKETIME_NO_CACHE=1, else at most once a FAKETIME_CACHE_DURATION). With
// FAKETIME_DONT_FAKE_MONOTONIC=1, CLOCK_MONOTONIC (process.hrtime, performance.now()) is left alone.
// The lab's wall-clock steps use it: the host clock is shared and must never be stepped, and Linux
// time namespaces do not virtualise CLOCK_REALTIME.

/** libfaketime's shared object where Debian puts it, or null when not installed. */
export function faketimeLibrary(): string | null {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib/arm-linux-gnueabihf', '/usr/lib']) {
    const file = join(dir, 'faketime', 'libfaketime.so.1');
    if (existsSync(file)) return file;
  }
  return null;
}
