import t from 'tap';
import fc from 'fast-check';
import { estimateWake, quantile, RECEIVE_CORRECTION_MAX_NS, TRANSMIT_CORRECTION_MAX_NS, WAKE_SAMPLES_MIN } from './wake.js';
import { seedFromEnv } from '../../test/support/seeded.js';

// The stamp corrections from probe figures: the first-quartile probe delay less the prober's cheapest send
// comes off receive stamps, half our cheapest send goes onto transmit stamps; both bounded, never
// negative, and none at all from too few probes.

const many = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

t.test('the first-quartile probe delay less the prober send is the receive correction; half a send the transmit one', async (t) => {
  const delays = many(49, (i) => 50_000 + i * 1000); // first quartile 62 us
  const c = estimateWake({ delaysNs: delays, proberSendNs: [9000, 8000, 12_000], sendNs: [6000, 4000, 5000] });
  t.same(c, { receiveNs: 54_000, transmitNs: 2000, delayNs: 62_000, samples: 49, problem: null });
});

t.test('too few probes: no correction, and the reason', async (t) => {
  const c = estimateWake({ delaysNs: many(WAKE_SAMPLES_MIN - 1, () => 80_000), proberSendNs: [1000], sendNs: [1000], busy: 30 });
  t.equal(c.receiveNs, 0);
  t.equal(c.transmitNs, 0);
  t.match(c.problem, /15 probes answered on an idle event loop \(at least 16 needed, 30 more came while the event loop was busy\)/);
});

t.test('a stalled run is capped, a prober slower than the delays gives 0, garbage is ignored', async (t) => {
  t.equal(estimateWake({ delaysNs: many(20, () => 5e9), proberSendNs: [], sendNs: [1e9] }).receiveNs, RECEIVE_CORRECTION_MAX_NS);
  t.equal(estimateWake({ delaysNs: many(20, () => 5e9), proberSendNs: [], sendNs: [1e9] }).transmitNs, TRANSMIT_CORRECTION_MAX_NS);
  t.equal(estimateWake({ delaysNs: many(20, () => 10_000), proberSendNs: [30_000], sendNs: [] }).receiveNs, 0);
  const c = estimateWake({ delaysNs: [...many(20, () => 40_000), Number.NaN, -5, Number.POSITIVE_INFINITY], proberSendNs: [0], sendNs: [0] });
  t.equal(c.samples, 20, 'NaN, negative and infinite delays are not probes');
  t.equal(c.receiveNs, 40_000);
});

t.test('quantile picks the nearest rank of the sorted values', async (t) => {
  t.equal(quantile([5, 1, 3], 0.5), 3);
  t.equal(quantile([5, 1, 3], 0), 1);
  t.equal(quantile([5, 1, 3], 1), 5);
  t.ok(Number.isNaN(quantile([], 0.5)));
});

t.test('any measurement gives corrections inside their bounds', async (t) => {
  const ns = fc.oneof(fc.double({ noNaN: false }), fc.integer({ min: -1e6, max: 1e10 }));
  fc.assert(fc.property(fc.array(ns, { maxLength: 80 }), fc.array(ns, { maxLength: 5 }), fc.array(ns, { maxLength: 5 }), (delaysNs, proberSendNs, sendNs) => {
    const c = estimateWake({ delaysNs, proberSendNs, sendNs });
    return c.receiveNs >= 0 && c.receiveNs <= RECEIVE_CORRECTION_MAX_NS && c.transmitNs >= 0 && c.transmitNs <= TRANSMIT_CORRECTION_MAX_NS
      && Number.isInteger(c.receiveNs) && Number.isInteger(c.transmitNs);
  }), { seed: seedFromEnv(14) });
  t.pass('bounded for every input');
});
