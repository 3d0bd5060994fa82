import t from 'tap';
import { runSeedRange } from './raft-sim-test.js';

// The 10 000 CI seeds, in one file on purpose: it keeps one core busy for ~30 s instead of both,
// so timing-sensitive tests of other areas that tap runs alongside keep their CPU. On a machine
// loaded by other work the same seeds took over 120 s (the suite's per-file limit): the run is
// bounded by its seed count, so the limit here only has to catch a hang.
t.setTimeout(900_000);
runSeedRange(1, 10_000);
