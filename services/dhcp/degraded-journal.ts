import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, truncateSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { crc32c } from '../../lib/crc32c.js';
import { writeFileDurably, type DurableStep } from '../../lib/durable-file.js';
import { parseDegradedRecord, type DegradedRecord } from '../../cluster/degraded.js';

// The degraded journal (HA.md 2.4, degraded rule 3): a lone member's grants, each written and
// fdatasync'd before its ACK leaves, in a file of its own in node.stateDir. One frame per record:
// u32 length, u32 CRC-32C of the payload, the payload (JSON). The first frame is the header
// { journal, from }: the journal's id and the number of its first record (records merged and
// cleared keep their numbers). A torn tail (a crash mid-write: a short frame, a CRC that does not
// match) is cut at the start, as the WAL cuts its unsynced tail: the record was never fsync'd,
// so no ACK was sent for it.

export const DEGRADED_JOURNAL_FILE = 'dhcp-degraded.journal';
const HEADER = 8;
const FRAME_MAX = 64 * 1024;

export interface JournalContents {
  journal: string;
  from: number;
  records: DegradedRecord[];
  /** Bytes cut from the end (a torn tail); 0 when the file was whole. */
  cutBytes: number;
}

function frame(payload: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(payload), 'utf8');
  const out = Buffer.alloc(HEADER + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(crc32c(body), 4);
  body.copy(out, HEADER);
  return out;
}

/** Reads a journal file (null: none there). A torn or damaged tail is cut from the file. */
export function readJournal(path: string): JournalContents | null {
  if (!existsSync(path)) return null;
  const bytes = readFileSync(path);
  let offset = 0;
  let header: { journal: string; from: number } | null = null;
  const records: DegradedRecord[] = [];
  while (offset + HEADER <= bytes.length) {
    const length = bytes.readUInt32LE(offset);
    if (length > FRAME_MAX || offset + HEADER + length > bytes.length) break;
    const body = bytes.subarray(offset + HEADER, offset + HEADER + length);
    if (crc32c(body) !== bytes.readUInt32LE(offset + 4)) break;
    let raw: unknown;
    try { raw = JSON.parse(body.toString('utf8')); } catch { break; }
    if (header === null) {
      const h = raw as { journal?: unknown; from?: unknown };
      if (typeof h?.journal !== 'string' || !Number.isSafeInteger(h.from) || (h.from as number) < 1) break;
      header = { journal: h.journal, from: h.from as number };
    } else {
      const r = parseDegradedRecord(raw);
      if (r === null) break;
      records.push(r);
    }
    offset += HEADER + length;
  }
  const cutBytes = bytes.length - offset;
  if (cutBytes > 0) {
    truncateSync(path, offset);
    const fd = openSync(path, 'r+');
    try { fdatasyncSync(fd); } finally { closeSync(fd); }
  }
  if (header === null) return null;
  return { journal: header.journal, from: header.from, records, cutBytes };
}

/** A whole journal file: the header, then the records. */
export function journalBytes(journal: string, from: number, records: readonly DegradedRecord[]): Buffer {
  return Buffer.concat([frame({ journal, from }), ...records.map(frame)]);
}

/** Replaces the journal with `records` (numbered from `from`) durably: temp file, fsync, rename, fsync of the directory. */
export async function rewriteJournal(path: string, journal: string, from: number, records: readonly DegradedRecord[]): Promise<void> {
  await writeFileDurably(path, journalBytes(journal, from, records), 0o600);
}

/**
 * The records a compacted journal keeps (a lone member renewing its clients every MCLT/2 writes a
 * record per renewal: a rack of 1,000 for a day is ~48,000 records): per (ip, mac) the newest one;
 * when that is a binding, the first record of its run of bindings (the records of its address
 * since another client's or its own release, decline or binding broke it: the merge's grantedAt,
 * the binding's first grant, comes from it) and an older binding of the run that ends later (the
 * merge keeps the later expiry); in their order, so the merge and the lone member's overlay (the
 * newest record per address wins there) come out as from the whole journal, first grant time too.
 */
export function compactRecords(records: readonly DegradedRecord[]): DegradedRecord[] {
  const newest = new Map<string, number>();
  const longest = new Map<string, number>();
  const first = new Map<string, number>();
  /** Per address, the pair of its last record while that was a binding. */
  const boundPair = new Map<number, string>();
  records.forEach((r, i) => {
    const key = `${r.ip}/${r.mac}`;
    newest.set(key, i);
    // Only bindings since the pair's run began: the merge keeps nothing from before it.
    if (r.state !== 'bound') {
      longest.delete(key);
      first.delete(key);
      boundPair.delete(r.ip);
      return;
    }
    if (boundPair.get(r.ip) !== key) {
      first.set(key, i);
      longest.set(key, i);
    } else if (records[longest.get(key)!]!.expiresAt < r.expiresAt) longest.set(key, i);
    boundPair.set(r.ip, key);
  });
  const keep = new Set(newest.values());
  for (const [key, n] of newest) {
    if (records[n]!.state !== 'bound') continue;
    const j = longest.get(key);
    if (j !== undefined && records[j]!.expiresAt > records[n]!.expiresAt) keep.add(j);
    const f = first.get(key);
    if (f !== undefined) keep.add(f);
  }
  return records.filter((_, i) => keep.has(i));
}

/** How many records a compaction would drop (compactRecords): superseded by later records of the same (ip, mac). */
export function supersededCount(records: readonly DegradedRecord[]): number {
  return records.length - compactRecords(records).length;
}

/** Appends records one at a time, each fdatasync'd before append() resolves; appends queue behind each other. */
export class JournalWriter {
  readonly path: string;
  #handle: Promise<FileHandle> | null = null;
  #tail: Promise<void> = Promise.resolve();

  constructor(path: string) {
    this.path = path;
  }

  append(record: DegradedRecord): Promise<void> {
    const bytes = frame(record);
    const done = this.#tail.then(async () => {
      this.#handle ??= open(this.path, 'a');
      const handle = await this.#handle;
      await handle.write(bytes);
      await handle.datasync();
    });
    // A failed append fails its own ACK only; the next one tries again on a fresh handle.
    this.#tail = done.catch(async () => {
      const h = this.#handle;
      this.#handle = null;
      await h?.then((f) => f.close()).catch(() => undefined);
    });
    return done;
  }

  /**
   * Replaces the journal with the records `make` returns when the appends queued before it are on
   * the disk (a compaction): a new file written, fsync'd, renamed over the old one, the directory
   * fsync'd (a crash at any step leaves the old journal or the new one, each whole); the appends
   * after it go to the new file.
   */
  replace(make: () => { journal: string; from: number; records: readonly DegradedRecord[] }, afterStep?: (step: DurableStep) => void): Promise<void> {
    const done = this.#tail.then(async () => {
      const h = this.#handle;
      this.#handle = null;
      await h?.then((f) => f.close()).catch(() => undefined);
      const { journal, from, records } = make();
      await writeFileDurably(this.path, journalBytes(journal, from, records), 0o600, afterStep);
    });
    this.#tail = done.catch(() => undefined);
    return done;
  }

  /** After a rewrite the file is a new one: the next append opens it again. */
  async reopen(): Promise<void> {
    await this.#tail;
    const h = this.#handle;
    this.#handle = null;
    await h?.then((f) => f.close()).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.reopen();
  }
}

/** Synchronous append for tests that build a torn file. */
export function appendFrameSync(path: string, payload: unknown): void {
  const fd = openSync(path, 'a');
  try { writeSync(fd, frame(payload)); fdatasyncSync(fd); } finally { closeSync(fd); }
}
