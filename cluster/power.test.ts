import t from 'tap';
import { parseIpv4 } from '../lib/ipv4.js';
import { planPower, powerSummary, selectNodes } from './power.js';
import { powerConfig } from './power-config.js';
import type { InventoryNode } from './inventory.js';

// The power: block and the plan: which argument list runs for which node, with what in it.

const node = (name: string, extra: Partial<InventoryNode> = {}): InventoryNode => ({ name, mac: '52:54:00:00:00:01', addedAt: 0, changedAt: 0, ...extra });

t.test('config: unknown variables, a variable as the program, nothing to run', async (t) => {
  const bad = powerConfig.safeParse({ command: ['/usr/bin/ipmitool', '-H', '{{name}}-bmc', '{{nmae}}'] });
  t.notOk(bad.success);
  t.match(bad.error?.issues[0], { path: ['command', 3], message: /unknown variable "\{\{nmae\}\}" \(known: name, mac, mac_dashes, ip, group, profile, action\)/ });
  const program = powerConfig.safeParse({ command: ['{{name}}', 'on'] });
  t.match(program.error?.issues[0], { path: ['command', 0], message: /a fixed path or name, not a variable/ });
  const brace = powerConfig.safeParse({ command: ['pdu', '{{ name'] });
  t.match(brace.error?.issues[0], { path: ['command', 1], message: /"\{\{" that starts no variable/ });
  const nothing = powerConfig.safeParse({ timeout: '10s' });
  t.match(nothing.error?.issues[0], { path: ['command'], message: /nothing to run/ });
  const emptyGroup = powerConfig.safeParse({ command: ['pdu'], groups: { rack2: {} } });
  t.match(emptyGroup.error?.issues[0], { path: ['groups', 'rack2'], message: /names no command/ });
  const unknownKey = powerConfig.safeParse({ command: ['pdu'], comand: ['x'] });
  t.notOk(unknownKey.success, 'an unknown key is an error');
  const ok = powerConfig.parse({ command: ['pdu', '{{action}}', '{{name}}'] });
  t.equal(ok.timeout, 30_000);
  t.equal(ok.parallel, 8);
  t.equal(powerSummary(ok), 'pdu');
  t.equal(powerSummary(powerConfig.parse({ command: ['pdu'], status: ['pdu-status'], off: ['pdu'], groups: { rack2: { command: ['ipmitool'] } } })), 'pdu, pdu-status; groups rack2');
});

t.test('plan: per-action before command, a group\'s before the site\'s, variables and environment', async (t) => {
  const config = powerConfig.parse({
    command: ['/usr/local/bin/pdu', '{{action}}', '{{name}}', '{{mac_dashes}}'],
    status: ['/usr/local/bin/pdu-status', '{{name}}'],
    groups: { rack2: { command: ['ipmitool', '-H', '{{name}}-bmc', 'chassis', 'power', '{{action}}'] }, poe: { cycle: ['poe', 'bounce', '{{ip}}'] } },
  });
  const plain = planPower(config, node('n1', { group: 'rack1', profile: 'arm64' }), 'cycle');
  t.same(plain, { node: 'n1', ok: true, argv: ['/usr/local/bin/pdu', 'cycle', 'n1', '52-54-00-00-00-01'], env: { LANHA_NAME: 'n1', LANHA_MAC: '52:54:00:00:00:01', LANHA_MAC_DASHES: '52-54-00-00-00-01', LANHA_ACTION: 'cycle', LANHA_GROUP: 'rack1', LANHA_PROFILE: 'arm64' } });
  t.same(planPower(config, node('n1'), 'status').ok && (planPower(config, node('n1'), 'status') as { argv: string[] }).argv, ['/usr/local/bin/pdu-status', 'n1']);
  t.same((planPower(config, node('b7', { group: 'rack2' }), 'off') as { argv: string[] }).argv, ['ipmitool', '-H', 'b7-bmc', 'chassis', 'power', 'off']);
  // The poe group has only cycle: on falls back to the site's command.
  t.same((planPower(config, node('p1', { group: 'poe' }), 'on') as { argv: string[] }).argv, ['/usr/local/bin/pdu', 'on', 'p1', '52-54-00-00-00-01']);
  // {{ip}}: the reservation, else the live lease, else a refusal naming it.
  t.same((planPower(config, node('p1', { group: 'poe', ip: parseIpv4('10.0.0.21')! }), 'cycle') as { argv: string[] }).argv, ['poe', 'bounce', '10.0.0.21']);
  t.same((planPower(config, node('p1', { group: 'poe' }), 'cycle', parseIpv4('10.0.0.150')!) as { argv: string[] }).argv, ['poe', 'bounce', '10.0.0.150']);
  t.same(planPower(config, node('p1', { group: 'poe' }), 'cycle'), { node: 'p1', ok: false, error: 'the power command needs {{ip}}, which p1 has not (no reservation and no lease)' });
  const onlyOff = powerConfig.parse({ off: ['pdu', 'off', '{{name}}'] });
  t.match(planPower(onlyOff, node('n1'), 'on'), { ok: false, error: 'no power command for "on": set power.on or power.command' });
});

t.test('select: names, a group or all, one way only', async (t) => {
  const all = [node('a', { group: 'g1' }), node('b', { group: 'g2' }), node('c', { group: 'g1' })];
  t.same(selectNodes(all, { names: ['C', 'a', 'c'] }), { ok: true, nodes: [all[2], all[0]] }, 'case folded, each once, in the order asked');
  t.same(selectNodes(all, { names: [], group: 'g1' }), { ok: true, nodes: [all[0], all[2]] });
  t.match(selectNodes(all, { names: ['a', 'zz', 'yy'] }), { ok: false, error: 'no node named zz, yy (lanctl nodes lists them)' });
  t.match(selectNodes(all, { names: [], group: 'g9' }), { ok: false, error: 'no node is in group g9' });
  t.match(selectNodes(all, { names: ['a'], all: true }), { ok: false, error: /one way/ });
  t.match(selectNodes(all, { names: [] }), { ok: false, error: /one way/ });
  t.match(selectNodes([], { names: [], all: true }), { ok: false, error: /no nodes/ });
});
