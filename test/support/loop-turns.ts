// Counts work done per turn of the event loop without a clock: `seen()` from inside the work (a
// toJSON, a getter), a setImmediate chain closing each turn. `stop()` gives how many turns passed and
// the most work seen in one of them: work done in one block shows as one turn holding all of it.

export interface TurnCount { turns: number; most: number }

export function loopTurns(): { seen: () => void; stop: () => TurnCount } {
  let now = 0;
  let most = 0;
  let turns = 0;
  let running = true;
  const tick = (): void => {
    most = Math.max(most, now);
    now = 0;
    turns++;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    seen: () => { now++; },
    stop: () => { running = false; most = Math.max(most, now); return { turns, most }; },
  };
}
