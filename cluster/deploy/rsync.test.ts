// rsync/ssh helpers: the progress2 parser on real CR-separated output, exit codes in words, --stats
// figures, the ssh argv (pinned key only, batch mode), the known_hosts file and fingerprints that
// match ssh-keygen, and the rootfs argv protecting the overlay from --delete.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BoundedOutput, controlPathFor, describeFailure, untransferredPaths, masterArgs, fingerprint, knownHostsFile, parseHostKey, parseProgress2, parseStats, rootfsRsyncArgs, rsyncExitWords, shellQuote, splitProgress, sshArgs } from './rsync.js';
import { fleetTargets, overlayFiles, pinnedKey, refuseMembers, resolveNames, resolveTargets } from './targets.js';
import { deployConfig } from './config.js';
import { Fsm } from '../fsm.js';

t.test('progress2 lines split on CR and parse into bytes, %, rate, ETA', async (t) => {
  const chunk1 = '\r          0   0%    0.00kB/s    0:00:00 (xfr#0, to-chk=3000/3001)\r  1,234,567  45%   12.34MB/s    0:00:03';
  const chunk2 = ' (xfr#12, to-chk=100/3001)\r 40,000,000 100%   20.00MB/s    0:00:01 (xfr#3000, to-chk=0/3001)\n';
  const a = splitProgress('', chunk1);
  t.equal(a.lines.length, 1);
  const b = splitProgress(a.rest, chunk2);
  const parsed = [...a.lines, ...b.lines].map(parseProgress2);
  t.same(parsed[1], { bytes: 1234567, percent: 45, rate: '12.34MB/s', eta: '0:00:03', toCheck: 100, total: 3001 });
  t.same(parsed[2], { bytes: 40000000, percent: 100, rate: '20.00MB/s', eta: '0:00:01', toCheck: 0, total: 3001 });
  t.same(parseProgress2('      32,768 100%   31.25MB/s    0:00:00'), { bytes: 32768, percent: 100, rate: '31.25MB/s', eta: '0:00:00' });
  t.equal(parseProgress2('sending incremental file list'), null);
  t.equal(parseProgress2('rsync error: some files could not be transferred (code 23)'), null);
});

t.test('exit codes 12/23/24/30/255 in words; failures name host keys and full disks', async (t) => {
  t.match(rsyncExitWords(12), /data stream broke off/);
  t.match(rsyncExitWords(23), /partial transfer: some files could not be transferred/);
  t.match(rsyncExitWords(24), /vanished/);
  t.match(rsyncExitWords(30), /timeout/);
  t.match(rsyncExitWords(255), /ssh failed/);
  t.match(rsyncExitWords(99), /exited with 99/);
  t.match(describeFailure(255, 'Host key verification failed.\nrsync: connection unexpectedly closed'), /host key mismatch.*nothing was sent/);
  // OpenSSH's own words (captured from ssh 9 against an sshd whose key is not the pinned one): the
  // result names the node, both fingerprints and the command that re-pins, with --replace (without
  // it, `lanctl nodes trust` refuses a changed key).
  const changed = [
    '@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @',
    'The fingerprint for the ED25519 key sent by the remote host is',
    'SHA256:ssrSfW40Zzxs4vKbh8OCMvlwz1h/Z2NeMJyzmYhfsfo.',
    'Offending ECDSA key in /var/lib/lanha/deploy/j1/known_hosts:1',
    'Host key for lanha-node-c3 has changed and you have requested strict checking.',
    'Host key verification failed.',
    'rsync: connection unexpectedly closed (0 bytes received so far) [sender]',
  ].join('\n');
  const pinned = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GVeZ';
  t.equal(describeFailure(255, changed, { node: 'c3', hostKey: pinned }),
    `host key mismatch on c3: it offered SHA256:ssrSfW40Zzxs4vKbh8OCMvlwz1h/Z2NeMJyzmYhfsfo, the pinned key is ${fingerprint(parseHostKey(pinned)!.blob)}; nothing was sent (rsync exit 255). If the node was reinstalled, check it and run \`lanctl nodes trust c3 --replace\``);
  t.match(describeFailure(255, 'Host key verification failed.\n', { node: 'c3' }), /^host key mismatch on c3; nothing was sent .*`lanctl nodes trust c3 --replace`$/);
  t.match(describeFailure(11, 'rsync: write failed on "/x": No space left on device (28)'), /^the disk under the destination on the node is full \(No space left on device; rsync exit 11\)/);
  t.equal(describeFailure(11, 'rsync: [receiver] write failed on "/srv/root/usr/bin/big3": No space left on device (28)\nrsync error: error in file IO (code 11) at receiver.c(381) [receiver=3.5.0]\n', { node: 'c1' }),
    'the disk under the destination on c1 is full (No space left on device; rsync exit 11). The sync needs room for the changed files next to the old ones until it ends; free space there, then `lanctl deploy resume`',
    'a full disk names the node and what to do (a resume alone fails the same way)');
  t.match(describeFailure(12, 'rsync: connection unexpectedly closed\n'), /rsync exit 12: the data stream broke off.*connection unexpectedly closed/);
  // ssh (or the node's ssh master) ended the connection because its keepalives went unanswered.
  t.match(describeFailure(255, 'Timeout, server 10.0.0.5 not responding.\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\n'),
    /^the connection went silent for 20 s: nothing came back from the node, not even an answer to the ssh keepalives sent every 5 s .*\(rsync exit 255\); lanctl deploy resume/);
});

t.test('--stats figures', async (t) => {
  const text = 'Number of files: 3,001\nNumber of regular files transferred: 30\nTotal transferred file size: 409,600 bytes\nTotal bytes sent: 421,337\nTotal bytes received: 1,234\n';
  t.same(parseStats(text), { sent: 421337, received: 1234, transferred: 409600, files: 30 });
  t.same(parseStats(''), {});
});

t.test('host keys: fingerprint as ssh-keygen prints it, known_hosts under a per-node alias, ssh argv pinned', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-keys-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let pub: string;
  try {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
    pub = readFileSync(join(dir, 'k.pub'), 'utf8').trim();
  } catch {
    process.stderr.write('\n*** SKIPPED host-key test: ssh-keygen is not installed (apt-get install openssh-client)\n');
    t.pass('SKIPPED: ssh-keygen missing');
    return;
  }
  const key = parseHostKey(pub);
  t.ok(key);
  const keygen = execFileSync('ssh-keygen', ['-lf', join(dir, 'k.pub')], { encoding: 'utf8' }).split(' ')[1];
  t.equal(fingerprint(key!.blob), keygen, 'SHA256:... exactly as ssh-keygen -lf');
  t.equal(parseHostKey('ssh-ed25519 ' + Buffer.from('garbage').toString('base64')), null, 'a blob not starting with its type is refused');
  t.equal(parseHostKey('not a key'), null);
  const kh = knownHostsFile([{ node: 'c1', hostKey: pub + ' comment' }]);
  t.equal(kh, `lanha-node-c1 ${key!.type} ${key!.base64}\n`);
  const args = sshArgs({ node: 'c1', host: '10.0.0.5', port: 2222, user: 'root' }, { knownHostsFile: '/k h' });
  for (const o of ['BatchMode=yes', 'StrictHostKeyChecking=yes', 'UserKnownHostsFile=/k h', 'HostKeyAlias=lanha-node-c1', 'GlobalKnownHostsFile=/dev/null']) t.ok(args.includes(o), o);
  t.same(args.slice(-4), ['-p', '2222', '-l', 'root']);
});

t.test('rootfs argv: the issue\'s flags, the overlay as the first source (its names win, --delete spares them), -e quoted for rsync', async (t) => {
  const args = rootfsRsyncArgs({ source: '/s/gen/', overlay: '/w/overlay-c1', target: { node: 'c1', host: '10.0.0.5', port: 22, user: 'root' }, destination: '/srv/root', ssh: { knownHostsFile: '/tmp/k h' }, exclude: ['/proc/*'], dryRun: true });
  for (const f of ['-aHAX', '--sparse', '--numeric-ids', '--delete', '--delay-updates', '--delete-delay', '--info=progress2', '--no-inc-recursive', '--filter=- /proc/*', '--dry-run']) t.ok(args.includes(f), f);
  t.match(args[args.indexOf('-e') + 1], /^ssh .* 'UserKnownHostsFile=\/tmp\/k h' /);
  t.same(args.slice(-3), ['/w/overlay-c1/', '/s/gen/', '10.0.0.5:/srv/root/']);
  t.equal(shellQuote("it's"), `"it's"`);
  t.throws(() => shellQuote(`'"`));
});

t.test('targets: names and groups, nodes without a pinned key refused by name; overlay files per node', async (t) => {
  const config = deployConfig.parse({
    targets: [{ name: 'c1', host: '10.0.0.11', groups: ['rack1'] }, { name: 'c2', host: '10.0.0.12', groups: ['rack1'] }, { name: 'c3', host: 'c3.lan' }],
    hostKeys: { c1: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ' },
  });
  const fsm = new Fsm();
  fsm.apply(1, { at: 1000, command: { type: 'node.add', name: 'c9', mac: 'aa:00:00:00:00:09', ip: 0x0a000013, group: 'rack1' } });
  fsm.apply(2, { at: 1000, command: { type: 'node.trust', name: 'c9', hostKey: config.hostKeys['c1']! } });
  const fleet = fleetTargets(config, fsm);
  t.same(fleet.map((x) => `${x.name}@${x.host}`), ['c1@10.0.0.11', 'c2@10.0.0.12', 'c3@c3.lan', 'c9@10.0.0.19'], 'deploy.targets, then inventory nodes with their address');
  // A node without a reserved IP bound in two subnets whose newer binding was released: still a target, at its live one.
  const two = new Fsm();
  two.apply(1, { at: 1000, command: { type: 'node.add', name: 'c7', mac: 'aa:00:00:00:00:07' } });
  two.apply(2, { at: 1000, command: { type: 'lease.grant', ip: 0x0a000117, mac: 'aa:00:00:00:00:07', subnet: '10.0.1.0/24', leaseMs: 3_600_000 } });
  two.apply(3, { at: 2000, command: { type: 'lease.grant', ip: 0x0a000217, mac: 'aa:00:00:00:00:07', subnet: '10.0.2.0/24', leaseMs: 3_600_000 } });
  two.apply(4, { at: 3000, command: { type: 'lease.release', ip: 0x0a000217, mac: 'aa:00:00:00:00:07' } });
  t.same(fleetTargets(deployConfig.parse({}), two).map((x) => `${x.name}@${x.host}`), ['c7@10.0.1.23'], 'a node whose newer binding ended is reached at the one that runs');
  t.same(resolveNames(fleet, 'rack1,c3,c1'), ['c1', 'c2', 'c9', 'c3']);
  t.throws(() => resolveNames(fleet, 'nope'), /unknown node or group: nope/);
  const keyOf = (n: string) => pinnedKey(config, fsm, n);
  t.throws(() => resolveTargets(fleet, keyOf, 'root', ['c1', 'c2', 'c3']), /^no pinned host key for c2, c3: nothing was sent. Run `lanctl nodes trust c2`, `lanctl nodes trust c3` \(or set deploy.hostKeys\)$/);
  t.equal(resolveTargets(fleet, keyOf, 'root', ['c1'])[0]?.host, '10.0.0.11');
  t.equal(resolveTargets(fleet, keyOf, 'root', ['c9'])[0]?.hostKey, config.hostKeys['c1'], 'the inventory\'s pinned key');
  const files = overlayFiles('c1', 'site', [{ name: 'c1', ip: '10.0.0.11' }, { name: 'c2', ip: '10.0.0.12' }]);
  t.same(files.map((f) => f.path), ['etc/hostname', 'etc/machine-id', 'etc/hosts']);
  t.equal(files[0]!.content, 'c1\n');
  t.match(files[1]!.content, /^[0-9a-f]{32}\n$/);
  t.not(overlayFiles('c2', 'site', [])[1]!.content, files[1]!.content, 'machine-ids differ per node');
  t.match(files[2]!.content, /127\.0\.1\.1\tc1\n10\.0\.0\.12\tc2\n$/);
});

t.test('ssh masters: a control socket named by node, address, user, identity and pinned key; sessions use it, never make one', async (t) => {
  const target = { node: 'c1', host: '10.0.0.5', port: 22, user: 'root' };
  const path = controlPathFor('/var/lib/lanha/deploy/ssh', target, 'ssh-ed25519 AAAA1', '/k');
  t.match(path, /^\/var\/lib\/lanha\/deploy\/ssh\/[0-9a-f]{20}$/);
  t.equal(controlPathFor('/var/lib/lanha/deploy/ssh', target, 'ssh-ed25519 AAAA1', '/k'), path, 'stable: the next job finds the master');
  t.not(controlPathFor('/var/lib/lanha/deploy/ssh', target, 'ssh-ed25519 AAAA2', '/k'), path, 'a new pinned key never reuses a connection made under the old one');
  t.not(controlPathFor('/var/lib/lanha/deploy/ssh', { ...target, host: '10.0.0.6' }, 'ssh-ed25519 AAAA1', '/k'), path, 'nor a new address');
  t.equal(controlPathFor('/' + 'x'.repeat(80), target, 'k', undefined), undefined, 'too long for a unix socket: no master');
  const session = sshArgs(target, { knownHostsFile: '/k', controlPath: path! });
  for (const o of ['ControlMaster=no', `ControlPath=${path}`, 'StrictHostKeyChecking=yes']) t.ok(session.includes(o), o);
  t.notOk(sshArgs(target, { knownHostsFile: '/k' }).some((a) => a.startsWith('Control')), 'no socket, no master');
  const master = masterArgs(target, { knownHostsFile: '/k', controlPath: path! }, path!);
  for (const o of ['ControlMaster=yes', `ControlPath=${path}`, 'ControlPersist=no', '-N', 'StrictHostKeyChecking=yes', 'UserKnownHostsFile=/k']) t.ok(master.includes(o), o);
  t.notOk(master.includes('ControlMaster=no'));
  t.equal(master[master.length - 1], '10.0.0.5', 'the host last');
});

// The stderr below is what rsync 3.5 and OpenSSH 9 printed in test/integ/deploy-faults.test.ts: each
// result says what failed on which node and what to do, not rsync's generic words for the exit code
// ("rsync or ssh is not installed on this side" for a node without rsync, "ssh failed: ... login
// refused, or its host key" for a session killed mid-transfer, "partial transfer ... the rest was"
// for a read-only file system where nothing was written).
t.test('a node without rsync, a refused key, a read-only destination and a session lost mid-transfer are named', async (t) => {
  const node = { node: 'c3', user: 'root' };
  t.equal(describeFailure(127, 'rsync: connection unexpectedly closed (0 bytes received so far) [sender]\nrsync error: remote command not found (code 127) at io.c(285) [sender=3.5.0]\n', node),
    'rsync is not installed on c3 (the login worked, then its shell found no rsync; rsync exit 127): install it there (apt-get install rsync), then `lanctl deploy resume`');
  t.match(describeFailure(12, 'bash: line 1: rsync: command not found\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\nrsync error: error in rsync protocol data stream (code 12) at io.c(285) [sender=3.5.0]\n', node),
    /^rsync is not installed on c3 \(the login worked, then its shell found no rsync; rsync exit 12\)/, 'when rsync did not reap ssh in time it exits 12; the shell\'s line tells');
  t.notMatch(rsyncExitWords(127), /this side/, 'rsync exits 127 for the remote command');
  t.match(describeFailure(127, 'cannot run rsync: spawn rsync ENOENT', node), /^rsync cannot run on this LAN member \(cannot run rsync: spawn rsync ENOENT\): install it here/);
  t.equal(describeFailure(255, 'root@10.91.0.13: Permission denied (publickey).\r\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\nrsync error: unexplained error (code 255) at io.c(232) [sender=3.5.0]\n', node),
    "c3 refused the deploy key (Permission denied (publickey); rsync exit 255): add the public half of deploy.identityFile to root's authorized_keys on c3; nothing was sent");
  t.match(describeFailure(23, 'rsync: [receiver] mkstemp "/srv/root/.aaa.ZNMf7f" failed: Read-only file system (30)\nrsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]\n', node),
    /^the file system of the destination on c3 is read-only \(Read-only file system; rsync exit 23\): nothing could be written there; remount it read-write/);
  t.equal(describeFailure(255, 'rsync error: unexplained error (code 255) at io.c(949) [sender=3.5.0]\nclient_loop: send disconnect: Broken pipe\n', node),
    'the ssh connection to c3 was lost mid-transfer (Broken pipe; rsync exit 255): the node\'s sshd session ended (sshd restarted or killed, the node rebooting, the network reset). `lanctl deploy resume` syncs it again');
  t.match(describeFailure(255, 'ssh: connect to host 10.91.0.13 port 22: Connection refused\r\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\n', node), /^rsync exit 255: ssh failed: node unreachable/, 'an unreachable node keeps the exit code\'s words');
});

// A 20,000-file sync prints a progress line per file, over 1 MiB before --stats; the job's result
// read its figures from what was kept of the output.
t.test('the end of a long rsync output is kept: --stats after 20,000 progress lines', async (t) => {
  const out = new BoundedOutput(64 * 1024);
  const line = '          3 100%    2.93kB/s    0:00:00 (xfr#1, to-chk=19999/20201)\n';
  for (let i = 0; i < 20_000; i++) out.push(line);
  out.push('\nNumber of regular files transferred: 20,000\nTotal transferred file size: 106,490 bytes\nTotal bytes sent: 1,912,345\nTotal bytes received: 380,002\n');
  const text = out.text();
  t.ok(text.length < 3 * 64 * 1024, `bounded (${text.length} characters kept of ${line.length * 20_000})`);
  t.same(parseStats(text), { sent: 1_912_345, received: 380_002, transferred: 106_490, files: 20_000 });
  t.match(text, /^ {10}3 100%/, 'the start is kept too');
  t.match(text, /\n\[\d+ characters left out\]\n/);
  const short = new BoundedOutput(100);
  short.push('abc');
  short.push('def');
  t.equal(short.text(), 'abcdef', 'short output is kept whole');
});

// The other LAN member is in deploy.targets (the leader copies generations to it), so `--to lan-b`, or
// a group it is in, resolved and would have synced a compute node's tree over its files with --delete.
t.test('a rootfs deploy naming a LAN member, directly or through a group, is refused', async (t) => {
  const fleet = [
    { name: 'c1', host: '10.0.0.11', port: 22, groups: ['rack'] },
    { name: 'lan-b', host: '10.0.0.3', port: 22, groups: ['rack'] },
  ];
  const refuse = (to: string) => () => refuseMembers(fleet, to, ['lan-a', 'lan-b', 'witness'], 'lan-a', '/srv/root');
  t.doesNotThrow(refuse('c1'));
  t.doesNotThrow(refuse('nope'), 'unknown names are resolveNames\' to refuse');
  t.throws(refuse('c1,lan-b'), { message: 'lan-b is a LAN member of this cluster, not a compute node: a rootfs sync would replace its own files under /srv/root with the generation (rsync --delete). Nothing was started; name compute nodes only (lanctl nodes lists them)' });
  t.throws(refuse('lan-a'), { message: /^lan-a is this LAN member, not a compute node/ });
  t.throws(refuse('rack'), { message: /^lan-b \(in group rack\) is a LAN member of this cluster, not a compute node/ });
  t.throws(refuse('witness'), { message: /^witness is a LAN member of this cluster/ });
});

t.test('a partial transfer (23, 24) names the paths from rsync\'s own lines', async (t) => {
  // As rsync 3.5.0 printed them: a node file that could not be replaced, an unreadable source, a
  // source that vanished, a holding file that could not be made, a deletion refused.
  const stderr = [
    'rsync: [receiver] rename failed for "/srv/root/a/f2" (from a/.~tmp~/f2): Device or resource busy (16)',
    'rsync: [sender] send_files failed to open "/var/lib/lanha/rootfs/ab/d/b": Permission denied (13)',
    'file has vanished: "/var/lib/lanha/rootfs/ab/zz/late"',
    'rsync: [receiver] mkstemp "/srv/root/usr/.~tmp~/.big.Xk3aB9" failed: No space left on device (28)',
    'rsync: [generator] delete_file: unlink(etc/old) failed: Operation not permitted (1)',
    'cannot delete non-empty directory: var/cache',
    'rsync: [receiver] rename failed for "/srv/root/a/f2" (from a/.~tmp~/f2): Device or resource busy (16)',
    'rsync: connection unexpectedly closed (0 bytes received so far) [sender]',
    'rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]',
  ].join('\n');
  t.same(untransferredPaths(stderr), [
    { path: '/srv/root/a/f2', why: 'rename failed: Device or resource busy (16)' },
    { path: '/var/lib/lanha/rootfs/ab/d/b', why: 'send_files failed to open: Permission denied (13)' },
    { path: '/var/lib/lanha/rootfs/ab/zz/late', why: 'vanished while being sent' },
    { path: '/srv/root/usr/big', why: 'mkstemp failed: No space left on device (28)' },
    { path: 'etc/old', why: 'unlink failed: Operation not permitted (1)' },
    { path: 'var/cache', why: 'cannot delete non-empty directory' },
  ]);
  t.equal(describeFailure(23, stderr.split('\n')[0]!, { node: 'c1' }), 'rsync could not transfer 1 path to c1 (rsync exit 23, partial transfer): /srv/root/a/f2 (rename failed: Device or resource busy (16))');
  t.equal(describeFailure(24, 'file has vanished: "/s/zz/late"\n', { node: 'c2' }), "rsync could not transfer 1 path to c2 (rsync exit 24, source files vanished: the store's copy changed during the sync): /s/zz/late (vanished while being sent)");
  const many = Array.from({ length: 12 }, (_, i) => `file has vanished: "/s/f${i}"`).join('\n');
  t.match(describeFailure(24, many, { node: 'c2' }), /^rsync could not transfer 12 paths to c2 .*\/s\/f7 \(vanished while being sent\) and 4 more \(the daemon's log has rsync's whole output\)$/);
  t.match(describeFailure(12, stderr.split('\n').slice(0, 3).join('\n'), { node: 'c1' }), /^rsync exit 12:/, 'a connection lost is no partial transfer');
});
