import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

// One live process per state directory, through a LOCK file naming it. The file is made with
// link(2), which fails if it exists, so two daemons started at once cannot both take it (a read
// then a write let both through). It names the process by PID, start time and boot, so a LOCK
// left by a crash is never taken for a live owner when, after a reboot, another program has the
// same PID (the daemon refused to start until an operator deleted the file). A LOCK holding only
// a PID (older versions) is judged by the PID alone.

export interface LockOwner {
  pid: number;
  /** Clock ticks after boot at which the process started (/proc/PID/stat field 22), when recorded. */
  startTicks: string | null;
  /** /proc/sys/kernel/random/boot_id when written, when recorded. */
  bootId: string | null;
}

/** This process's identity as a LOCK records it: "PID\nSTART BOOT\n" (PID alone where /proc is missing). */
export function lockText(pid = process.pid): string {
  const start = processStart(pid);
  const boot = bootId();
  return start !== null && boot !== null ? `${pid}\n${start} ${boot}\n` : `${pid}\n`;
}

/** What a LOCK file's text says, or null when it names no process. */
export function parseLock(text: string): LockOwner | null {
  const [first, second] = text.split('\n');
  const pid = Number(first?.trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const m = /^(\d+) ([0-9a-f-]{36})$/.exec(second?.trim() ?? '');
  return { pid, startTicks: m?.[1] ?? null, bootId: m?.[2] ?? null };
}

/** Whether the process a LOCK names still runs: same PID, and where recorded the same boot and start time. */
export function ownerAlive(owner: LockOwner): boolean {
  if (!pidAlive(owner.pid)) return false;
  if (owner.bootId !== null) {
    const boot = bootId();
    if (boot !== null && boot !== owner.bootId) return false;
  }
  if (owner.startTicks !== null) {
    const start = processStart(owner.pid);
    if (start !== null && start !== owner.startTicks) return false;
  }
  return true;
}

/** The live process that holds `dir` (its LOCK names it), or undefined. */
export function lockHolder(dir: string): number | undefined {
  const owner = readOwner(join(dir, 'LOCK'));
  return owner !== null && ownerAlive(owner) ? owner.pid : undefined;
}

/**
 * Takes `dir`'s LOCK for this process; returns the PID of the live process that holds it instead,
 * or null once taken. A stale LOCK (its process gone, or its PID now another program's) is
 * replaced; this process may take a LOCK it already holds.
 */
export function acquireDirLock(dir: string): number | null {
  const lock = join(dir, 'LOCK');
  // Not *.tmp: Wal.open sweeps those once it holds the lock, and may do so while another starter writes its own.
  const mine = join(dir, `LOCK.${process.pid}.new`);
  try {
    writeWhole(mine, lockText());
  } catch (error) {
    // A full file system made the file and refused its text: leave no empty file behind.
    try { rmSync(mine, { force: true }); } catch { /* the first error is the one to tell */ }
    throw error;
  }
  try {
    for (let attempt = 0; attempt < 8; attempt++) {
      try {
        linkSync(mine, lock);
        return null;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const text = readText(lock);
      if (text === null) continue; // removed meanwhile: try again
      const owner = parseLock(text);
      if (owner !== null && owner.pid === process.pid) {
        renameSync(mine, lock);
        return null;
      }
      if (owner !== null && ownerAlive(owner)) return owner.pid;
      // Stale: move it aside and check that what moved is what was judged (another starter may
      // have replaced it in between); if not, put that one back and yield to it.
      const aside = join(dir, `LOCK.${process.pid}.stale`);
      try {
        renameSync(lock, aside);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      const moved = readText(aside);
      if (moved !== text) {
        try { linkSync(aside, lock); } catch { /* a third starter took it: it holds the lock now */ }
        rmSync(aside, { force: true });
        const other = readOwner(lock);
        if (other !== null && other.pid !== process.pid && ownerAlive(other)) return other.pid;
        continue;
      }
      rmSync(aside, { force: true });
    }
    throw new Error(`${lock}: could not be taken or judged after 8 tries (other processes keep replacing it)`);
  } finally {
    rmSync(mine, { force: true });
  }
}

/** Removes `dir`'s LOCK if this process holds it (never another's that replaced a stale one of ours). */
export function releaseDirLock(dir: string): void {
  const lock = join(dir, 'LOCK');
  if (readOwner(lock)?.pid === process.pid) rmSync(lock, { force: true });
}

function readOwner(file: string): LockOwner | null {
  const text = readText(file);
  return text === null ? null : parseLock(text);
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

function writeWhole(file: string, text: string): void {
  const fd = openSync(file, 'w', 0o644);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Field 22 of /proc/PID/stat (start time in clock ticks after boot), or null without /proc. */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count after its last ")".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}
