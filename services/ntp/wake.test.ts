import t from 'tap';
import fc from 'fast-check';
import { combineWake, estimateWake, NO_CORRECTION, quantile, receiveCorrectionAt, RECEIVE_CORRECTION_MAX_NS, TRANSMIT_CORRECTION_MAX_NS, WAKE_SAMPLES_MIN } from './wake.js';
import { seedFromEnv } from '../../test/support/seeded.js';

// The stamp corrections from probe figures: the first-quartile probe delay less the prober's cheapest send
// comes off receive stamps, half our cheapest send goes onto transmit stamps; both bounded, never
// negative, and none at all from too few probes.

const many = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

t.test('the first-quartile probe delay less the prober send is the receive correction; half a send the transmit one', async (t) => {
  const delays = many(49, (i) => 50_000 + i * 1000); // first quartile 62 us
  const c = estimateWake({ delaysNs: delays, proberSendNs: [9000, 8000, 12_000], sendNs: [6000, 4000, 5000] });
  t.same(c, { receiveNs: 54_000, transmitNs: 2000, delayNs: 62_000, samples: 49, problem: null, curve: [{ idleNs: 0, receiveNs: 54_000 }] });
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

t.test('a run at one spacing is one point of the curve, at the median time since the probe before', async (t) => {
  const c = estimateWake({ delaysNs: many(20, () => 300_000), proberSendNs: [0], sendNs: [0], idleNs: many(20, (i) => 1e9 + i * 1e6) });
  t.same(c.curve, [{ idleNs: 1_010_000_000, receiveNs: 300_000 }]);
});

const run = (idleNs: number, receiveNs: number, transmitNs = 2000): ReturnType<typeof estimateWake> =>
  ({ receiveNs, transmitNs, delayNs: receiveNs, samples: 20, problem: null, curve: [{ idleNs, receiveNs }] });

t.test('runs at several spacings combine into one curve by idle time; a failed run adds nothing', async (t) => {
  const failed = { ...NO_CORRECTION, problem: '3 probes answered' };
  const c = combineWake([run(1e9, 500_000, 9000), failed, run(30e6, 100_000, 2000), run(300e6, 200_000)]);
  t.same(c.curve, [{ idleNs: 30e6, receiveNs: 100_000 }, { idleNs: 300e6, receiveNs: 200_000 }, { idleNs: 1e9, receiveNs: 500_000 }]);
  t.equal(c.receiveNs, 100_000, 'the shortest spacing is the base receive correction');
  t.equal(c.transmitNs, 2000, 'and gives the transmit one');
  t.equal(c.samples, 60);
  t.equal(c.problem, null);
  t.equal(combineWake([failed]).problem, '3 probes answered', 'none measured: the first problem');
  t.equal(combineWake([]).problem, NO_CORRECTION.problem);
});

t.test('the correction at an idle time: the curve, log-linear between points, flat outside it', async (t) => {
  const curve = combineWake([run(10e6, 100_000), run(1e9, 500_000)]).curve;
  t.equal(receiveCorrectionAt(curve, 1e6), 100_000, 'below the first point: the first');
  t.equal(receiveCorrectionAt(curve, 10e6), 100_000);
  t.equal(receiveCorrectionAt(curve, 100e6), 300_000, 'halfway in log time: halfway');
  t.equal(receiveCorrectionAt(curve, 1e9), 500_000);
  t.equal(receiveCorrectionAt(curve, 60e9), 500_000, 'beyond the last point: the last, never extrapolated');
  t.equal(receiveCorrectionAt([], 1e9), 0, 'no curve: nothing');
  t.equal(receiveCorrectionAt(curve, Number.NaN), 100_000, 'an unknown idle time: the first point');
});

t.test('the correction at any idle time lies within the curve and the bound', async (t) => {
  const point = fc.record({ idleNs: fc.integer({ min: 0, max: 1e10 }), receiveNs: fc.integer({ min: 0, max: RECEIVE_CORRECTION_MAX_NS }) });
  fc.assert(fc.property(fc.array(point, { minLength: 1, maxLength: 5 }), fc.oneof(fc.double(), fc.integer({ min: -1e6, max: 1e11 })), (points, idle) => {
    const curve = [...points].sort((a, b) => a.idleNs - b.idleNs);
    const v = receiveCorrectionAt(curve, idle);
    const values = curve.map((p) => p.receiveNs);
    return Number.isInteger(v) && v >= Math.min(...values) && v <= Math.max(...values) && v <= RECEIVE_CORRECTION_MAX_NS;
  }), { seed: seedFromEnv(15) });
  t.pass('bounded for every curve and idle time');
});
