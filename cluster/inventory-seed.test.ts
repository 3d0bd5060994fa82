// How the config's `nodes:` block seeds the replicated inventory: once per name; the log is the truth after that.
import t from 'tap';
import type { NodeEntry } from './inventory-config.js';
import { profilesKnownHere } from './inventory-config.js';
import { parseCidr } from '../lib/ipv4.js';
import { Fsm } from './fsm.js';
import type { Command } from './commands.js';
import { seedPlan } from './inventory-seed.js';

t.test('seeding: config nodes the log never held are proposed; differing ones reported; removed ones stay removed', async (t) => {
  const fsm = new Fsm();
  let index = 0;
  const apply = (command: Command): void => fsm.apply(++index, { at: 1000 * index, command });
  const nodes: NodeEntry[] = [
    { name: 'rack1', mac: '52:54:00:00:00:01', ip: 0x0a000015 },
    { name: 'rack2', mac: '52:54:00:00:00:02', profile: 'pi4' },
    { name: 'rack3', mac: '52:54:00:00:00:03' },
  ];
  const ctx = { subnets: [parseCidr('10.0.0.0/24')!] };
  apply({ type: 'node.add', name: 'rack2', mac: '52:54:00:00:00:02', profile: 'pi5' }); // by hand, before
  apply({ type: 'node.add', name: 'other', mac: '52:54:00:00:00:03' }); // holds rack3's MAC
  const plan = seedPlan(fsm.inventory, nodes, ctx);
  t.same(plan.propose, [{ type: 'node.add', name: 'rack1', mac: '52:54:00:00:00:01', ip: 0x0a000015, origin: 'config' }]);
  t.same(plan.differs, ['rack2: config says profile pi4, the log pi5']);
  t.match(plan.refused, [/^rack3: MAC 52:54:00:00:00:03 already belongs to node other/]);
  for (const command of plan.propose) apply(command);
  apply({ type: 'node.remove', name: 'rack1' });
  t.same(seedPlan(fsm.inventory, nodes, ctx).propose, [], 'a seeded node removed with lanctl stays removed');
  apply({ type: 'node.add', name: 'rack1', mac: '52:54:00:00:00:01', origin: 'config' });
  t.equal(fsm.inventory.byName('rack1'), undefined, 'even a late config proposal (a new leader behind on apply) is a no-op');
  apply({ type: 'node.add', name: 'rack1', mac: '52:54:00:00:00:01' });
  t.ok(fsm.inventory.byName('rack1'), 'an operator can add it back by hand');
});

t.test('profiles are checked on a LAN node, not on a witness (which renders no boot files and has no profiles: block)', async (t) => {
  t.same([...profilesKnownHere({ node: { role: 'server' }, profiles: { pi4: {} } } as never)!], ['pi4']);
  t.same([...profilesKnownHere({ node: { role: 'server' } } as never)!], [], 'a LAN node without profiles: flags every named profile');
  t.equal(profilesKnownHere({ node: { role: 'witness' } }), null, 'a witness checks none: its `lanctl nodes` showed every node "(unknown!)"');
});
