// The sync user's forced command: what a netbooting node may run on the LAN node (a read-only pull
// of gen/<id>/, the checklist, a report) and what is refused (writes, other paths, other commands).
import t from 'tap';
import { clientAddress, parseGateCommand } from './gate.js';

const id = 'ab'.repeat(32);

t.test('allowed: the pull an initramfs rsync sends, checklist, report', async (t) => {
  t.same(parseGateCommand(`rsync --server --sender -logDtprHAXe.iLsfxCIvu --numeric-ids . gen/${id}/`),
    { kind: 'pull', generation: id, options: ['-logDtprHAXe.iLsfxCIvu', '--numeric-ids'] });
  t.same(parseGateCommand(`checklist ${id}`), { kind: 'checklist', generation: id });
  t.same(parseGateCommand(`report ${id} 0 12345 ok`), { kind: 'report', generation: id, exit: 0, bytes: 12345, ok: true });
  t.same(parseGateCommand(`report ${id} 12 0 bad`), { kind: 'report', generation: id, exit: 12, bytes: 0, ok: false });
});

t.test('refused: receiving, deleting, other paths, other commands, no command', async (t) => {
  for (const bad of [
    `rsync --server -logDtpr . gen/${id}/`,
    `rsync --server --sender -logDtpr --remove-source-files . gen/${id}/`,
    `rsync --server --sender -logDtpr --log-file=/etc/passwd . gen/${id}/`,
    `rsync --server --sender -logDtpr . gen/${id}/../../`,
    'rsync --server --sender -logDtpr . /etc/',
    `rsync --server --sender -logDtpr . gen/${id.slice(1)}/`,
    'sh -c id', `checklist ${id} extra`, 'checklist ../x', `report ${id} 0 1 maybe`, '', undefined,
  ]) t.equal(parseGateCommand(bad).kind, 'refused', String(bad));
  t.equal(clientAddress('10.0.0.7 51234 10.0.0.1 22'), '10.0.0.7');
  t.equal(clientAddress(undefined), undefined);
});

// What `rsync -aL` / `-ak` send (checked with rsync 3.2: `-lLogDtpre.iLsfxCIvu`): the sender would
// follow the generation's absolute symlinks into the LAN node's own files. The "L" after the "."
// is a protocol capability, not --copy-links, and stays allowed.
t.test('refused: options that make the sender follow symlinks out of the generation', async (t) => {
  for (const flags of ['-lLogDtpre.iLsfxCIvu', '-lkogDtpre.iLsfxCIvu', '-L', '-k', '-aL']) {
    const r = parseGateCommand(`rsync --server --sender ${flags} --safe-links . gen/${id}/`);
    t.equal(r.kind, 'refused', flags);
    t.match(r.kind === 'refused' ? r.reason : '', /follow symlinks/, `${flags}: the reason says why`);
  }
  t.equal(parseGateCommand(`rsync --server --sender -lHogDtpAXre.iLsfxCIvu . gen/${id}/`).kind, 'pull', 'rsync -aHAX: "L" only among the capabilities');
});

// What rsync 3.x clients send for the usual pulls (recorded with a printing -e program: -a, -aHAX,
// -az, -avvv, -aW, -aU, -aC, -aI, -aR, -aS, -ac, -an, -aq, -au, -ab, -rlt, -rtv, choices, --inplace).
t.test('allowed: the server options real clients send for a pull', async (t) => {
  for (const flags of ['-blogDtpre.iLsfxCIvu', '-lHogDtpAXre.iLsfxCIvu --numeric-ids', '-lHogDtpAXrxze.LsfxCIvu --numeric-ids', '-lWogDtpre.iLsfxCIvu',
    '-logDtUpre.iLsfxCIvu', '-logDtprCe.iLsfxCIvu', '-logDtprIe.iLsfxCIvu', '-logDtprRe.iLsfxCIvu', '-logDtprSe.iLsfxCIvu', '-logDtprce.iLsfxCIvu',
    '-logDtpre.iLsfxCIvu --checksum-choice=xxh128', '-logDtpre.iLsfxCIvu --compress-choice=zstd', '-logDtpre.iLsfxCIvu --inplace', '-logDtprxe.iLsfxCIvu',
    '-ltre.iLsfxCIvu', '-nlogDtpre.iLsfxCIvu', '-qlogDtpre.iLsfxCIvu', '-ulogDtpre.iLsfxCIvu', '-vvvlogDtpre.iLsfxCIvu', '-vtre.iLsfxCIvu']) {
    t.equal(parseGateCommand(`rsync --server --sender ${flags} . gen/${id}/`).kind, 'pull', flags);
  }
});

// With -s (--protect-args, --secluded-args in rsync 3.3) the server reads its real arguments from
// the protocol after it starts: a client that wrote "-s . gen/<id>/" on the command line could then
// name any path the sync user can read (checked with rsync 3.5: a file outside the generation came
// back), or --remove-source-files. Other letters that read or take values on this side are refused too.
t.test('refused: -s and the short options that act on this node', async (t) => {
  for (const flags of ['-s', '-slogDtpre.iLsfxCIvu', '-logDtprse.iLsfxCIvu', '--protect-args', '--secluded-args']) {
    const r = parseGateCommand(`rsync --server --sender ${flags} . gen/${id}/`);
    t.equal(r.kind, 'refused', flags);
    if (flags.startsWith('--')) continue;
    t.match(r.kind === 'refused' ? r.reason : '', /-s \(--protect-args/, `${flags}: the reason names -s`);
  }
  for (const flags of ['-fmerge', '-Fe.iLsfxCIvu', '-Mx', '-B1024', '-Tx', '-ex', '-logDtpr9e.iLsfxCIvu']) {
    const r = parseGateCommand(`rsync --server --sender ${flags} . gen/${id}/`);
    t.equal(r.kind, 'refused', flags);
  }
  t.match(parseGateCommand(`rsync --server --sender -logDtprFe.iLsfxCIvu . gen/${id}/`), { kind: 'refused', reason: /option -F is not allowed/ });
});
