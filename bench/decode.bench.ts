/**
 * `decode.sigfox`: decodes per second of a 12-byte Sigfox frame through the grammar
 * interpreter, and `decode.codec`: of an 11-byte LoRaWAN frame through the sandboxed
 * TS013 codec in `codecs/lht65.js` (batches of 64, as the ingest path enters the
 * sandbox once per batch); each next to a hand-written DataView decoder of the same
 * frame, measured in the same run.
 *
 * Targets (the decoders issue sets none): a decoder should cost less per message than
 * the rest of the ingest core (about 6 µs). At 0.1x of the DataView decoder the grammar
 * takes under 1 µs; at 0.005x (about 50,000 decodes/s) a sandboxed codec takes under
 * 20 µs, where entering the sandbox alone once per message would take 100 µs.
 */
import { readFileSync } from 'node:fs';
import { compileCodec } from '../lambdas/core/decoders/codec.ts';
import { decodeSigfox, parseSigfoxGrammar } from '../lambdas/core/decoders/sigfox.ts';
import { type BenchResult, opsPerSecond } from './types.ts';

// A tracker frame: temperature, humidity, battery, pressure, four flags, a 3-bit mode, a counter.
const GRAMMAR =
  'temp::int:16*0.01 humidity::uint:8*0.5 battery::uint:8*0.02 pressure::uint:32:little-endian*0.01 ' +
  'moving::bool:7 tamper::bool:6 charging::bool:5 alarm::bool:4 mode::uint:3::2 counter:9:uint:24';
const FRAMES = Array.from({ length: 64 }, (_, i) =>
  Buffer.from([0x09, 0x92 + (i % 8), 0x7b, 0xa0, 0x10, 0x8c, 0x01, 0x00, 0xb5, 0x00, 0x01, i]),
);

function handWrittenSigfox(frame: Buffer) {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  const flags = view.getUint8(8);
  return {
    temp: view.getInt16(0) / 100,
    humidity: view.getUint8(2) / 2,
    battery: view.getUint8(3) * 0.02,
    pressure: view.getUint32(4, true) / 100,
    moving: (flags & 0x80) !== 0,
    tamper: (flags & 0x40) !== 0,
    charging: (flags & 0x20) !== 0,
    alarm: (flags & 0x10) !== 0,
    mode: flags & 0x07,
    counter: (view.getUint8(9) << 16) | view.getUint16(10),
  };
}

const LORA = Array.from({ length: 64 }, (_, i) =>
  Uint8Array.from([0xcb, 0xf6, 0x09, 0x92 + (i % 8), 0x02, 0x65, 0x01, 0xfe, 0xbf, 0x7f, 0xff]),
);

function handWrittenLht65(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const external = view.getInt16(7);
  return {
    battery: (view.getUint16(0) & 0x3fff) / 1000,
    temperature: view.getInt16(2) / 100,
    humidity: view.getUint16(4) / 10,
    batteryStatus: ['ultra low', 'low', 'ok', 'good'][view.getUint8(0) >> 6],
    ...(view.getUint8(6) === 1 && external !== 0x7fff ? { externalTemperature: external / 100 } : {}),
  };
}

export async function run(): Promise<BenchResult[]> {
  let sink = 0;
  const grammar = parseSigfoxGrammar(GRAMMAR);
  const sigfox = opsPerSecond(() => {
    for (const frame of FRAMES) sink += Object.keys(decodeSigfox(grammar, frame).values).length;
  });
  const sigfoxBase = opsPerSecond(() => {
    for (const frame of FRAMES) sink += Object.keys(handWrittenSigfox(frame)).length;
  });
  const codec = compileCodec(
    readFileSync(new URL('../codecs/lht65.js', import.meta.url), 'utf8'),
    'lht65.js',
  );
  const recvTime = new Date();
  // As the ingest path calls it: a batch's messages in one sandbox entry.
  const inputs = LORA.map((bytes) => ({ bytes, fPort: 2, recvTime }));
  const sandboxed = opsPerSecond(() => {
    for (const result of codec.decodeUplinks(inputs)) sink += result.errors.length + 1;
  });
  const codecBase = opsPerSecond(() => {
    for (const bytes of LORA) sink += Object.keys(handWrittenLht65(bytes)).length;
  });
  if (sink === 0) throw new Error('benchmark was optimized away');
  const result = (name: string, value: number, baseline: number, target: number): BenchResult => ({
    name,
    value: Math.round(value * 64),
    unit: 'decodes/s',
    baseline: Math.round(baseline * 64),
    ratio: value / baseline,
    target: `>= ${target}`,
    met: value / baseline >= target,
  });
  return [
    result('decode.sigfox', sigfox, sigfoxBase, 0.1),
    result('decode.codec', sandboxed, codecBase, 0.005),
  ];
}
