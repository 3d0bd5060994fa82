import type { NodeId } from './types.js';

// Majority arithmetic, kept pure and tiny so the simulator can check it against a naive twin.

/** The largest value that a majority of `voters` have reached (missing voters count as 0). */
export function committedIndex(voters: readonly NodeId[], acked: (id: NodeId) => number): number {
  if (voters.length === 0) return Infinity;
  const values = voters.map(acked).sort((a, b) => b - a);
  return values[Math.floor(voters.length / 2)]!;
}

export type VoteResult = 'won' | 'lost' | 'pending';

export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return 'won';
  const need = Math.floor(voters.length / 2) + 1;
  let yes = 0, no = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) yes++;
    else if (v === false) no++;
  }
  if (yes >= need) return 'won';
  if (voters.length - no < need) return 'lost';
  return 'pending';
}
