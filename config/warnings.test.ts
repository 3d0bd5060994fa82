import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseConfig } from './index.js';
import { configWarnings, nodeProfileWarnings } from './warnings.js';
import { repoPath } from '../test/support/paths.js';

// A config node naming a profile the profiles: block lacks was accepted without a word by config
// check, and the node then got a render error for every boot file.

t.test('a config node with a profile no profiles: entry has is a warning naming the key, the node and the profiles there are', async (t) => {
  const site = readFileSync(repoPath('examples/site.yaml'), 'utf8');
  t.same(nodeProfileWarnings(parseConfig(site, 'site.yaml')), [], 'the example: none');
  const typo = parseConfig(site.replace('name: pi-04, mac: "dc:a6:32:00:00:04", ip: 10.20.0.14, profile: pi4', 'name: pi-04, mac: "dc:a6:32:00:00:04", ip: 10.20.0.14, profile: pi5'), 'site.yaml');
  t.same(nodeProfileWarnings(typo), ['nodes[1].profile: "pi5" (pi-04) is not in the profiles: block (pi4, x86): its boot files cannot be rendered until it is']);
  t.ok(configWarnings(typo).includes(nodeProfileWarnings(typo)[0]!), 'among the warnings config check prints and the daemon logs');
});
