/**
 * The field rules of the normalizer: arrays inside a reading flattened to indexed
 * names, reserved column names stored as `$<name>`, a field that cannot be stored
 * refused alone with a warning kept in the raw record; and outside input built to
 * break them (huge arrays, deep nesting, prototype names, names in the renamed form,
 * ten thousand fields), each with a bounded result and never an exception.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateRuntimeConfig } from '../../../lambdas/core/config.ts';
import { decodeMessage, decodeMessages } from '../../../lambdas/core/ingest/decode.ts';
import {
  type NormalizeContext,
  normalize,
  RENAMED_PREFIX,
  storedMetricName,
} from '../../../lambdas/core/ingest/normalize.ts';
import {
  MAX_RAW_WARNING_CHARS,
  MAX_RAW_WARNINGS,
  warningsColumn,
} from '../../../lambdas/core/ingest/records.ts';
import { RESERVED_METRIC_NAMES } from '../../../lambdas/core/reading.ts';
import { DEFAULT_VALIDATION } from '../../../lambdas/core/readings/limits.ts';
import { ingestOf, mqttMessage, NOW } from '../../support/fakes.ts';

const context: NormalizeContext = {
  deviceId: 'd1',
  deviceType: 'thermo',
  source: 'mqtt',
  messageId: 'm1',
  receivedAt: NOW,
  limits: DEFAULT_VALIDATION,
};
/** As the ingest path sees a payload: JSON text, parsed (`__proto__` an own key). */
const read = (json: string, ctx: NormalizeContext = context) =>
  normalize(JSON.parse(json), Buffer.from(json), ctx);
const one = (value: unknown, ctx?: NormalizeContext) => read(JSON.stringify(value), ctx);

const config = validateRuntimeConfig({
  deviceTypes: {
    big: { decoder: { sigfox: 'n::uint:64' } },
    warner: {
      decoder: {
        codec: 'inline-warner.js',
        source:
          'function decodeUplink(i) { return { data: { t: i.bytes[0], time: 2 }, warnings: ["battery low", "clock not set"] }; }',
      },
    },
  },
});
const ingest = ingestOf(config, () => NOW);

describe('arrays inside a reading', () => {
  it('flatten to indexed names, at any depth, nulls left out', () => {
    const { readings, warnings } = one({ a: [1, 'x', { b: true }, null, [4, [5]]], e: [] });
    expect(warnings).toEqual([]);
    expect(readings[0]?.metrics).toEqual({ 'a.0': 1, 'a.1': 'x', 'a.2.b': true, 'a.4.0': 4, 'a.4.1.0': 5 });
  });

  it('count as a level of nesting each', () => {
    // Top object 1, then seven arrays: the seventh is level 8 (the limit), its content too deep.
    const { readings, warnings } = one({ ok: 1, a: [[[[[[[1]]]]]]], b: [[[[[[[[1]]]]]]]] });
    expect(readings[0]?.metrics).toEqual({ ok: 1, 'a.0.0.0.0.0.0.0': 1 });
    expect(warnings).toEqual(['not stored: "b.0.0.0.0.0.0.0" is nested deeper than 8 levels']);
  });

  it('at the top of the data still mean many readings', () => {
    const { readings } = one([{ t: 1 }, { t: [2, 3] }]);
    expect(readings.map((r) => r.metrics)).toEqual([{ t: 1 }, { 't.0': 2, 't.1': 3 }]);
  });
});

describe('reserved column names', () => {
  it.each([...RESERVED_METRIC_NAMES])(
    'stores a metric named %s under "$" and its name, with no warning',
    (name) => {
      const { readings, warnings } = one({ [name]: 7, other: 1 });
      expect(readings[0]?.metrics).toEqual({ [`$${name}`]: 7, other: 1 });
      expect(warnings).toEqual([]);
    },
  );

  it('leaves dotted names that end in a reserved name as they are', () => {
    expect(one({ gps: { time: 1 }, t: [{ source: 'a' }] }).readings[0]?.metrics).toEqual({
      'gps.time': 1,
      't.0.source': 'a',
    });
  });

  it('never lets a sent name take the renamed form: a top-level $ key is refused with a warning', () => {
    const { readings, warnings } = one({ time: 1, $time: 2, $device_id: 3, $type: 'x', a: { $time: 4 } });
    expect(readings[0]?.metrics).toEqual({ $time: 1, 'a.$time': 4 });
    expect(warnings).toEqual([
      'not stored: "$time" is a top-level "$" key: only $id, $ts and $seq are read',
      'not stored: "$device_id" is a top-level "$" key: only $id, $ts and $seq are read',
    ]);
  });
});

describe('a field that cannot be stored', () => {
  it.each<[string, string, RegExp]>([
    ['a number too large', '{"ok": 1, "bad": 1e999}', /^not stored: metric "bad" is not a finite number$/],
    [
      'a string too long',
      `{"ok": 1, "bad": "${'x'.repeat(3000)}"}`,
      /^not stored: metric "bad" is a string longer than 2048 bytes$/,
    ],
    ['a control character in a name', '{"ok": 1, "b\\u0001d": 1}', /^not stored: metric name "b.d" must be/],
    ['outer spaces in a name', '{"ok": 1, " bad": 1}', /^not stored: metric name " bad" must be/],
    [
      'a name too long',
      `{"ok": 1, "${'n'.repeat(300)}": 1}`,
      /^not stored: metric name "n{64}…" must be 1-256 bytes/,
    ],
    ['a name given twice', '{"ok": 1, "a.b": 1, "a": {"b": 2}}', /^not stored: metric "a.b" is given twice/],
    [
      'a subtree too deep',
      '{"ok": 1, "a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}',
      /nested deeper/,
    ],
  ])('is %s: left out alone, the reading stored, a warning said', (_, json, warning) => {
    const { readings, rejections, warnings } = read(json);
    expect(rejections).toEqual([]);
    expect(readings[0]?.metrics.ok).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(warning);
  });

  it('past validation.maxMetrics: the first ones stored, the rest counted in one warning', () => {
    const value = Object.fromEntries(Array.from({ length: 205 }, (_, i) => [`m${i}`, i]));
    const { readings, warnings } = one(value);
    expect(Object.keys(readings[0]?.metrics ?? {})).toHaveLength(200);
    expect(readings[0]?.metrics.m199).toBe(199);
    expect(warnings).toEqual([
      'not stored: 5 fields past validation.maxMetrics (more than 200 metrics in one reading), from "m200" on',
    ]);
  });

  it('says which element of an array it was in', () => {
    expect(read('[{"t": 1}, {"t": 1, "u": 1e999}]').warnings).toEqual([
      'element 1: not stored: metric "u" is not a finite number',
    ]);
  });

  it('when it was the only one, the reading is rejected as before, with its reason', () => {
    const { readings, rejections, warnings } = read('{"bad": 1e999, "$ts": 1795500000}', context);
    expect(readings).toEqual([]);
    expect(warnings).toEqual([]);
    expect(rejections).toEqual([
      expect.objectContaining({ code: 'invalid_metric', reason: 'metric "bad" is not a finite number' }),
    ]);
  });
});

describe('warnings kept with the message (the raw record)', () => {
  it('holds the refused fields as a JSON array, and is absent when nothing was refused', () => {
    const bad = decodeMessage(mqttMessage('m1', { ok: 1, deep: [[[[[[[[1]]]]]]]] }, 'dt/thermo/d1'), ingest);
    expect(bad.readings[0]?.metrics).toEqual({ ok: 1 });
    expect(JSON.parse(bad.raw?.warnings ?? 'null')).toEqual([
      'not stored: "deep.0.0.0.0.0.0.0" is nested deeper than 8 levels',
    ]);
    const good = decodeMessage(mqttMessage('m2', { ok: 1 }, 'dt/thermo/d1'), ingest);
    expect(good.raw).not.toHaveProperty('warnings');
  });

  it("holds a codec's warnings, before the normalizer's", async () => {
    const [outcome] = await decodeMessages(
      [
        {
          messageId: 'm1',
          body: JSON.stringify({ payload: 'AQ==', topic: 'dt/warner/d1', receivedAt: NOW }),
        },
      ],
      ingest,
    );
    expect(outcome?.readings[0]?.metrics).toEqual({ t: 1, $time: 2 });
    expect(JSON.parse(outcome?.raw?.warnings ?? 'null')).toEqual(['battery low', 'clock not set']);
  });

  it("holds a Sigfox grammar's warnings", () => {
    const outcome = decodeMessage(
      {
        messageId: 'm1',
        body: JSON.stringify({ payload: '//////////8=', topic: 'dt/big/d1', receivedAt: NOW }),
      },
      ingest,
    );
    expect(outcome.readings[0]?.metrics).toEqual({ n: '18446744073709551615' });
    expect(JSON.parse(outcome.raw?.warnings ?? '[]')).toEqual([expect.stringContaining('decimal string')]);
  });

  it('is bounded: at most 10 refusals a reading, then how many more', () => {
    const value: Record<string, unknown> = { ok: 1 };
    for (let i = 0; i < 5_000; i++) value[`b\u0001${i}`] = 1;
    const outcome = decodeMessage(mqttMessage('m1', value, 'dt/thermo/d1'), ingest);
    expect(outcome.readings[0]?.metrics).toEqual({ ok: 1 });
    const warnings = JSON.parse(outcome.raw?.warnings ?? '[]') as string[];
    expect(warnings).toHaveLength(11);
    expect(warnings.at(-1)).toBe('not stored: and 4990 more fields');
  });

  it('cuts what a codec says: 20 warnings of at most 500 characters, then how many more', () => {
    const column = JSON.parse(
      warningsColumn(Array.from({ length: 1000 }, (_, i) => `${i}`.repeat(400))),
    ) as string[];
    expect(column).toHaveLength(MAX_RAW_WARNINGS + 1);
    for (const w of column) expect(w.length).toBeLessThanOrEqual(MAX_RAW_WARNING_CHARS + 1);
    expect(column.at(-1)).toBe('and 980 more warnings');
  });
});

describe('outside input built to break the rules: bounded, warned, never an exception', () => {
  const bounded = (json: string, ctx?: NormalizeContext) => {
    const started = performance.now();
    const result = read(json, ctx);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(result.warnings.length).toBeLessThanOrEqual(22);
    for (const r of result.readings) expect(Object.keys(r.metrics).length).toBeLessThanOrEqual(200);
    return result;
  };

  it('a huge array: 200 metrics stored, the rest counted', () => {
    const { readings, warnings } = bounded(JSON.stringify({ a: new Array(100_000).fill(1) }));
    expect(Object.keys(readings[0]?.metrics ?? {})).toHaveLength(200);
    expect(warnings).toEqual([expect.stringMatching(/^not stored: 99800 fields past validation.maxMetrics/)]);
  });

  it('nesting ten thousand levels deep, in objects and in arrays', () => {
    const objects = `{"ok": 1, "a": ${'{"a": '.repeat(10_000)}1${'}'.repeat(10_000)}}`;
    const arrays = `{"ok": 1, "a": ${'['.repeat(10_000)}1${']'.repeat(10_000)}}`;
    for (const json of [objects, arrays]) {
      const { readings, warnings } = bounded(json);
      expect(readings[0]?.metrics).toEqual({ ok: 1 });
      expect(warnings).toEqual([expect.stringMatching(/nested deeper than 8 levels$/)]);
    }
  });

  it('__proto__, constructor and prototype keys, nested and in arrays, are plain names', () => {
    const { readings, warnings } = bounded(
      '{"__proto__": {"polluted": 1}, "constructor": [{"prototype": 2}], "toString": 3, "hasOwnProperty": [null, 4]}',
    );
    expect(warnings).toEqual([]);
    const metrics = readings[0]?.metrics ?? {};
    expect(Object.keys(metrics)).toEqual([
      '__proto__.polluted',
      'constructor.0.prototype',
      'toString',
      'hasOwnProperty.1',
    ]);
    expect(Object.getPrototypeOf(metrics)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('ten thousand fields, within a raised maxMetrics: all stored', () => {
    const limits = { ...DEFAULT_VALIDATION, maxMetrics: 10_000 };
    const value = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`f${i}`, i]));
    const result = read(JSON.stringify(value), { ...context, limits });
    expect(Object.keys(result.readings[0]?.metrics ?? {})).toHaveLength(10_000);
    expect(result.warnings).toEqual([]);
  });

  it('a batch with an attack in it: the other messages stored', async () => {
    // Within the payload limit (128 KB): 2,000 elements of prototype names and refused values.
    const attack = `{"a": [${new Array(2_000).fill('{"__proto__": 1, "time": [1e999, "x"]}').join(',')}]}`;
    const outcomes = await decodeMessages(
      [
        mqttMessage('m1', attack, 'dt/thermo/d1'),
        mqttMessage('m2', { t: 1 }, 'dt/thermo/d2'),
        mqttMessage('m3', [{ $time: 1 }, { time: 2 }], 'dt/thermo/d3'),
      ],
      ingest,
    );
    expect(outcomes.map((o) => o.error)).toEqual([undefined, undefined, undefined]);
    expect(Object.keys(outcomes[0]?.readings[0]?.metrics ?? {})).toHaveLength(200);
    expect(outcomes[1]?.readings[0]?.metrics).toEqual({ t: 1 });
    expect(outcomes[2]?.readings.map((r) => r.metrics)).toEqual([{ $time: 2 }]);
    expect(outcomes[2]?.quarantine).toEqual([expect.objectContaining({ reason_code: 'invalid_metric' })]);
  });
});

describe('the naming rule (properties)', () => {
  /** Names outside input sends: any string, the reserved ones, prototype names and the renamed form. */
  const name = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.constantFrom(...RESERVED_METRIC_NAMES, '__proto__', 'constructor', 'toString', '$time', 'a.b', '0'),
  );
  /** Leaves that can be stored, and containers of them, within the depth limit. */
  const value = fc.letrec((tie) => ({
    leaf: fc.oneof(fc.integer(), fc.boolean(), fc.string({ maxLength: 8 }), fc.constant(null)),
    node: fc.oneof(
      { depthSize: 'small', maxDepth: 4 },
      tie('leaf'),
      fc.array(tie('node'), { maxLength: 4 }),
      fc.dictionary(name, tie('node'), { maxKeys: 4 }),
    ),
  })).node;
  const reading = fc.dictionary(name, value, { maxKeys: 8 });

  /** Non-null leaves, top-level envelope keys left out: each must be a metric or a warning. */
  const leaves = (v: unknown, top = true): number => {
    if (v === null) return 0;
    if (typeof v !== 'object') return 1;
    let n = 0;
    for (const [k, child] of Object.entries(v as object)) {
      if (top && ['$id', '$ts', '$seq', '$type'].includes(k)) continue;
      // Any other top-level `$` key is one field refused, whatever it holds.
      if (top && k.startsWith('$')) {
        if (child !== null) n++;
        continue;
      }
      n += leaves(child, false);
    }
    return n;
  };

  it('stores no metric under a reserved name, loses no field, and keeps prototype names plain', () => {
    fc.assert(
      fc.property(reading, (item) => {
        const json = JSON.stringify(item);
        const parsed = JSON.parse(json) as Record<string, unknown>;
        const { readings, rejections, warnings } = read(json);
        if (rejections.length > 0) return; // a $ts or $seq that is not one: the reading, not a field
        const metrics = readings[0]?.metrics ?? {};
        for (const stored of Object.keys(metrics)) expect(RESERVED_METRIC_NAMES.has(stored)).toBe(false);
        // Past ten warnings a reading says "and N more fields": those N are refused fields too.
        const more = /and (\d+) more fields$/.exec(warnings.at(-1) ?? '');
        const refused = more ? warnings.length - 1 + Number(more[1]) : warnings.length;
        expect(Object.keys(metrics).length + refused).toBe(leaves(parsed));
        expect(Object.getPrototypeOf(metrics)).toBe(Object.prototype);
      }),
      { numRuns: 500 },
    );
  });

  it('gives idempotent names that are never reserved, a renamed name only to a reserved one', () => {
    fc.assert(
      fc.property(name, (n) => {
        const stored = storedMetricName(n);
        if (stored === undefined) return;
        expect(RESERVED_METRIC_NAMES.has(stored)).toBe(false);
        expect(storedMetricName(stored)).toBe(stored);
        expect(stored === n || (RESERVED_METRIC_NAMES.has(n) && stored === RENAMED_PREFIX + n)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('the fixtures named in SOURCES.md', () => {
  it('are all listed there', () => {
    const sources = readFileSync(new URL('../../fixtures/networks/ttn/SOURCES.md', import.meta.url), 'utf8');
    for (const file of ['sensecap-s2120', 'sensecap-s2103', 'decentlab-dl-5tm', 'browan-tbms100'])
      expect(sources).toContain(`${file}.json`);
  });
});
