import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// A BusyBox userland for the node side of a deploy: a directory with one link per applet of the
// installed busybox (Debian's busybox or busybox-static), plus rsync (a node needs it, BusyBox has
// none), to put first, and alone, in a shell's PATH. BusyBox builds differ in what an applet takes:
// `mvWithoutT` puts a `mv` in front that refuses -T as builds without that option do (the one in
// Debian 12, 1.35, has it) and otherwise runs BusyBox's own.

export interface BusyboxOptions {
  mvWithoutT?: boolean;
}

/** Makes the userland under `dir` and returns its bin directory; null when busybox or rsync is not installed. */
export function busyboxUserland(dir: string, options: BusyboxOptions = {}): string | null {
  const busybox = installed('busybox');
  const rsync = installed('rsync');
  if (busybox === null || rsync === null) return null;
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => /^[\w.[\]-]+$/.test(a));
  for (const applet of applets) {
    if (applet === 'mv' && options.mvWithoutT) continue;
    symlinkSync(busybox, join(bin, applet));
  }
  symlinkSync(rsync, join(bin, 'rsync'));
  if (options.mvWithoutT) {
    writeFileSync(join(bin, 'mv'), [
      `#!${busybox} sh`,
      'for a in "$@"; do case "$a" in --) break;; --*) ;; -*T*) echo "mv: invalid option -- \'T\'" >&2; exit 1;; esac; done',
      `exec ${busybox} mv "$@"`, '',
    ].join('\n'), { mode: 0o755 });
  }
  return bin;
}

function installed(tool: string): string | null {
  for (const d of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) if (existsSync(join(d, tool))) return join(d, tool);
  return null;
}
