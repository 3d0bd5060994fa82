import { isGenerationId } from './manifest.js';

// `lanctl internal ssh-gate`: the forced command of the sync user's authorized_keys lines. A
// netbooting node's initramfs may only (1) pull a committed generation read-only with rsync,
// (2) fetch its sha256sum checklist, (3) report the result. This file parses SSH_ORIGINAL_COMMAND
// into one of those or a refusal; pure (the shell in bin/commands-internal.ts runs it).

export type GateRequest =
  | { kind: 'pull'; generation: string; options: string[] }
  | { kind: 'checklist'; generation: string }
  | { kind: 'report'; generation: string; exit: number; bytes: number; ok: boolean }
  | { kind: 'refused'; reason: string };

// Options an rsync client sends to a sender-side server; anything else (--remove-source-files,
// --log-file, --files-from, ...) could write or delete on the LAN node and is refused.
const LONG_OPTIONS: ReadonlySet<string> = new Set([
  '--numeric-ids', '--delete', '--delete-after', '--delete-during', '--delete-delay', '--delete-before', '--checksum', '--no-inc-recursive',
  '--inplace', '--partial', '--sparse', '--one-file-system', '--hard-links', '--acls', '--xattrs', '--fake-super', '--stats', '--safe-links',
]);
// Short options a client puts before the "e.CAPS" capability letters for a pull (-a is rlptgoD; -z,
// -H, -A, -X, -x, -S, -c, -n, -v, ...). Not among them: -s (--protect-args / --secluded-args: the
// real arguments then come over the protocol, unseen here, and a client could name any path the
// sync user can read, or --remove-source-files), -L and -k (follow symlinks), -f / -F (filter rules
// and merge files read on this node), -M (options for this side), -B and -T (take values).
const SHORT_LETTERS = new Set('rlptgoDHAXExWRdSnumOJIzyciqvKNUCb');
const LONG_PREFIXES = ['--checksum-choice=', '--compress-choice=', '--info=', '--debug='];

export function parseGateCommand(original: string | undefined): GateRequest {
  if (original === undefined || original.trim() === '') return { kind: 'refused', reason: 'no command: this key may only pull a generation, fetch a checklist or report' };
  const words = original.trim().split(/\s+/);
  if (words[0] === 'rsync') return parsePull(words);
  if (words[0] === 'checklist') {
    if (words.length !== 2 || !isGenerationId(words[1]!)) return { kind: 'refused', reason: 'usage: checklist <generation id, 64 hex>' };
    return { kind: 'checklist', generation: words[1]! };
  }
  if (words[0] === 'report') {
    const [, generation, exit, bytes, verdict] = words;
    if (words.length !== 5 || !isGenerationId(generation ?? '') || !/^\d{1,3}$/.test(exit ?? '') || !/^\d{1,15}$/.test(bytes ?? '') || (verdict !== 'ok' && verdict !== 'bad')) {
      return { kind: 'refused', reason: 'usage: report <generation> <rsync exit> <bytes received> <ok|bad>' };
    }
    return { kind: 'report', generation: generation!, exit: Number(exit), bytes: Number(bytes), ok: verdict === 'ok' };
  }
  return { kind: 'refused', reason: `"${words[0]!.slice(0, 40)}" is not allowed: this key may only pull a generation, fetch a checklist or report` };
}

function parsePull(words: string[]): GateRequest {
  if (words[1] !== '--server' || words[2] !== '--sender') return { kind: 'refused', reason: 'only read-only pulls: rsync ... lanha-sync@SERVER:gen/<id>/ DEST' };
  const args = words.slice(3);
  const path = args.pop();
  const dot = args.pop();
  if (dot !== '.' || path === undefined) return { kind: 'refused', reason: 'unexpected rsync server arguments' };
  const m = /^gen\/([0-9a-f]{64})(?:\/|\/\.)?$/.exec(path);
  if (!m) return { kind: 'refused', reason: `only gen/<generation id>/ can be pulled, not ${path.slice(0, 80)}` };
  for (const a of args) {
    const shortFlags = /^-[A-Za-z]+(?:\.[A-Za-z]*)?$/.test(a) && !a.startsWith('--');
    if (!shortFlags) {
      if (!LONG_OPTIONS.has(a) && !LONG_PREFIXES.some((p) => a.startsWith(p))) return { kind: 'refused', reason: `rsync option ${a.slice(0, 40)} is not allowed here` };
      continue;
    }
    // After the "." come protocol capability letters (where "L" and "s" mean something else); the
    // "e" that starts them ends the options.
    const letters = a.slice(1).split('.')[0]!;
    const options = a.includes('.') && letters.endsWith('e') ? letters.slice(0, -1) : letters;
    // -L (--copy-links) and -k (--copy-dirlinks) make the sender follow symlinks: a generation's
    // absolute links (var/run -> /run, etc/localtime -> /usr/share/...) would then send this LAN
    // node's own files.
    const followed = /[Lk]/.exec(options);
    if (followed !== null) return { kind: 'refused', reason: `rsync option -${followed[0]} (follow symlinks) is not allowed: a generation's symlinks are sent as links, never followed on this node` };
    if (options.includes('s')) return { kind: 'refused', reason: 'rsync option -s (--protect-args / --secluded-args) is not allowed: its arguments would come over the protocol, past this check; pull without it' };
    const other = [...options].find((c) => !SHORT_LETTERS.has(c));
    if (other !== undefined) return { kind: 'refused', reason: `rsync option -${other} is not allowed here (a read-only pull of gen/<id>/ takes options such as -a, -z, -H, -A, -X, -c, -n, -v)` };
  }
  return { kind: 'pull', generation: m[1]!, options: args };
}

/** The client address from SSH_CONNECTION ("client-ip client-port server-ip server-port"). */
export function clientAddress(sshConnection: string | undefined): string | undefined {
  const ip = sshConnection?.trim().split(/\s+/)[0];
  return ip !== undefined && /^\d+\.\d+\.\d+\.\d+$/.test(ip) ? ip : undefined;
}
