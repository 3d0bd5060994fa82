import t from 'tap';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { seededRandom } from '../../../lib/random.js';
import { RaftNode } from '../../../cluster/raft/node.js';
import type { Message, NodeId } from '../../../cluster/raft/types.js';
import { repoPath } from '../../support/paths.js';

// etcd-style scripted scenarios: test/scenarios/raft/*.txt hold commands, each followed by the
// trace it must print (after a "----" line, ended by a blank line). UPDATE=1 rewrites the expected
// traces; review the diff like code.
//
//   cluster a b c           members (election 10 ticks, heartbeat 2, seeded)
//   campaign a | tick a 5 | tick-all 5 | propose a text
//   stabilize               persist+deliver until quiet, printing every message
//   cut a b | heal          drop messages between two members / stop dropping
//   status                  one line per member

const DIR = repoPath('test', 'scenarios', 'raft');

function describe(m: Message): string {
  const parts = [`${m.from}->${m.to} ${m.type} term=${m.term}`];
  if (m.type === 'append' || m.type === 'vote' || m.type === 'prevote') parts.push(`idx=${m.index} logTerm=${m.logTerm}`);
  if (m.type === 'append') parts.push(`commit=${m.commit} entries=[${m.entries.map((e) => `${e.term}/${e.index}${e.data.length ? ':' + new TextDecoder().decode(e.data) : ''}`).join(',')}]`);
  if (m.type === 'append-resp') parts.push(`idx=${m.index}`);
  if (m.reject) parts.push('REJECT');
  return parts.join(' ');
}

function run(script: string): string {
  const nodes = new Map<NodeId, RaftNode>();
  const cut = new Set<string>();
  const blocks: string[] = [];
  for (const block of script.split(/\n(?=\S)/)) {
    const command = block.split('\n')[0]!.trim();
    if (command === '' || command.startsWith('#')) { blocks.push(block.trimEnd()); continue; }
    const [op, ...args] = command.split(/\s+/);
    const out: string[] = [];
    const node = (id: string): RaftNode => { const n = nodes.get(id); if (!n) throw new Error(`no member ${id}`); return n; };
    switch (op) {
      case 'cluster':
        args.forEach((id, i) => nodes.set(id!, new RaftNode({ id: id!, electionTicks: 10, heartbeatTicks: 2, random: seededRandom(i + 1) },
          { hardState: { term: 0, vote: null, commit: 0 }, conf: { voters: args as string[], learners: [], witnesses: [] }, entries: [] })));
        break;
      case 'campaign': node(args[0]!).campaign(); break;
      case 'tick': for (let i = 0; i < Number(args[1]); i++) node(args[0]!).tick(); break;
      case 'tick-all': for (let i = 0; i < Number(args[0]); i++) for (const n of nodes.values()) n.tick(); break;
      case 'propose': out.push(JSON.stringify(node(args[0]!).propose(new TextEncoder().encode(args[1] ?? '')))); break;
      case 'cut': cut.add(`${args[0]}|${args[1]}`); cut.add(`${args[1]}|${args[0]}`); break;
      case 'heal': cut.clear(); break;
      case 'stabilize':
        for (let round = 0; round < 50; round++) {
          const msgs: Message[] = [];
          for (const n of nodes.values()) {
            if (!n.hasReady()) continue;
            const rd = n.ready();
            msgs.push(...rd.messages);
            n.advance(rd);
          }
          if (msgs.length === 0) break;
          for (const m of msgs) {
            const dropped = cut.has(`${m.from}|${m.to}`);
            out.push(describe(m) + (dropped ? '  (dropped)' : ''));
            if (!dropped) nodes.get(m.to)?.step(m);
          }
        }
        break;
      case 'status':
        for (const n of nodes.values()) out.push(`${n.id}: ${n.role} term=${n.term} leader=${n.leader ?? '-'} commit=${n.commitIndex} last=${n.lastIndex} lease=${n.leaseValid()}`);
        break;
      default:
        throw new Error(`unknown command ${command}`);
    }
    blocks.push(`${command}\n----\n${out.join('\n')}${out.length ? '\n' : ''}`);
  }
  return blocks.join('\n').trimEnd() + '\n';
}

for (const file of readdirSync(DIR).filter((f) => f.endsWith('.txt')).sort()) {
  t.test(`scenario ${file}`, async (t) => {
    const path = `${DIR}/${file}`;
    const text = readFileSync(path, 'utf8');
    const script = text.split('\n').reduce<{ lines: string[]; skipping: boolean }>((acc, line) => {
      if (line === '----') return { ...acc, skipping: true };
      if (acc.skipping) return line === '' ? { lines: acc.lines, skipping: false } : acc;
      acc.lines.push(line);
      return acc;
    }, { lines: [], skipping: false }).lines.filter((l) => l.trim() !== '').join('\n');
    const actual = run(script);
    if (process.env['UPDATE'] === '1') writeFileSync(path, actual);
    else t.equal(actual, text, `${file} matches its recorded trace (UPDATE=1 to regenerate, then review the diff)`);
  });
}
