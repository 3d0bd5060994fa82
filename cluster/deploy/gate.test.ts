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
