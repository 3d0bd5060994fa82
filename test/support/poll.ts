// Polls a condition on real time until it holds or `ms` pass; returns whether it held. For tests on
// real sockets, where "eventually" is the claim and the bound only keeps a failure from hanging.

export const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond() && performance.now() < end) await wait(5);
  return cond();
}
