/** `iot-pipeline decode`: one payload through one decoder, as ingest would decode it. */

import type { Decoder } from '../../lambdas/core/decoders/decoder.ts';
import { parseHex } from '../../lambdas/core/decoders/hex.ts';
import { jsonDecoder } from '../../lambdas/core/decoders/json.ts';
import { buildDecoder, buildDecoders } from '../../lambdas/core/decoders/registry.ts';
import { ConfigError, DEFAULT_CONFIG } from '../../lib/config.ts';
import { readConfigFile } from '../../lib/config-sources.ts';
import { parse, UsageError, wholeNumber } from '../args.ts';
import { readFlagFile } from '../files.ts';

export const options = {
  hex: { type: 'string' },
  base64: { type: 'string' },
  type: { type: 'string' },
  config: { type: 'string' },
  sigfox: { type: 'string' },
  codec: { type: 'string' },
  fport: { type: 'string' },
  'recv-time': { type: 'string' },
  'timeout-ms': { type: 'string' },
  'memory-mb': { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

export const usage = `Usage: iot-pipeline decode (--hex <bytes> | --base64 <bytes>) <decoder> [options]

Try a decoder on a payload and print the decoded object; exit code 1 when it cannot be decoded.

The payload, once:
  --hex <bytes>            e.g. 09927b
  --base64 <bytes>         e.g. y/YJkgJlAf6/f/8=

The decoder, one of:
  --type <deviceType>      the decoder a device type has in the config (JSON when it has none)
  --config <file>          the pipeline config that --type reads (default: the built-in one)
  --sigfox '<grammar>'     a Sigfox payload grammar, e.g. 'temp::int:16*0.01 hum::uint:8*0.5'
  --codec <file.js>        a LoRaWAN codec (decodeUplink), with --fport <n> (0 to 255)

Options:
  --recv-time <ISO-8601>   the codec's recvTime (default: now)
  --timeout-ms <n>         the codec's time limit (default 50)
  --memory-mb <n>          the codec's memory limit (default 16)
  --json                   print exactly the decoded object on stdout, on one line
  -h, --help               show this help

Examples:
  iot-pipeline decode --sigfox 'temp::int:16*0.01 hum::uint:8*0.5' --hex 09927b
  iot-pipeline decode --codec codecs/lht65.js --fport 2 --base64 y/YJkgJlAf6/f/8=`;

export async function run(args: string[]): Promise<number> {
  const { values } = parse({ args, options });
  const bytes = payload(values.hex, values.base64);
  // A LoRaWAN port.
  const fPort = values.fport === undefined ? undefined : wholeNumber('--fport', values.fport, 0, 255);
  const recvTime = values['recv-time'] === undefined ? new Date() : new Date(values['recv-time']);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(values['recv-time'] ?? '0000-00-00T') || Number.isNaN(recvTime.getTime())) {
    throw new UsageError(
      `--recv-time: "${values['recv-time']}" is not an ISO-8601 time (2026-11-25T06:00:00Z)`,
    );
  }
  const chosen = [values.type, values.sigfox, values.codec].filter((v) => v !== undefined);
  if (chosen.length !== 1)
    throw new UsageError(
      'Say which decoder, once: --type <deviceType>, --sigfox <grammar> or --codec <file.js>',
    );
  let decoder: Decoder;
  // What was built for this run (a codec's worker thread), freed once the payload is decoded.
  let built: { close(): Promise<void> } | undefined;
  try {
    if (values.sigfox !== undefined) decoder = buildDecoder({ sigfox: values.sigfox }, '--sigfox');
    else if (values.codec !== undefined) {
      decoder = buildDecoder(
        {
          codec: values.codec,
          source: readFlagFile('--codec', values.codec),
          ...(values['timeout-ms'] === undefined
            ? {}
            : { timeoutMs: wholeNumber('--timeout-ms', values['timeout-ms'], 1, 10_000) }),
          ...(values['memory-mb'] === undefined
            ? {}
            : { memoryMb: wholeNumber('--memory-mb', values['memory-mb'], 1, 256) }),
        },
        values.codec,
      );
    } else {
      const config = values.config ? readConfigFile(values.config) : DEFAULT_CONFIG;
      const type = values.type ?? '';
      if (!config.deviceTypes[type]) {
        process.stderr.write(`iot-pipeline: device type "${type}" is not configured; decoding as JSON\n`);
      }
      // Only this type's decoder: the config's other codecs are not loaded for one payload.
      const chosenType = config.deviceTypes[type];
      const decoders = buildDecoders(chosenType ? { [type]: chosenType } : {});
      built = decoders;
      decoder = decoders.of(type) ?? jsonDecoder(config.validation);
    }
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new UsageError((error as Error).message);
  }
  built ??= { close: async () => decoder.close?.() };
  const result = decoder.decode({ bytes, fPort, receivedAt: recvTime.getTime() });
  await built.close();
  if (!result.ok) {
    process.stderr.write(`iot-pipeline: cannot decode: ${result.reason}\n`);
    return 1;
  }
  for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`);
  const decoded = result.data;
  process.stdout.write(
    values.json ? `${JSON.stringify(decoded)}\n` : `${JSON.stringify(decoded, null, 2)}\n`,
  );
  return 0;
}

/** The payload's bytes from --hex or --base64 (exactly one of them). */
function payload(hex: string | undefined, base64: string | undefined): Buffer {
  if ((hex === undefined) === (base64 === undefined)) {
    throw new UsageError('Give the payload once: --hex 0a1b2c or --base64 ChsS');
  }
  if (hex !== undefined) {
    const parsed = parseHex(hex);
    if ('error' in parsed) throw new UsageError(`--hex: ${parsed.error}`);
    return parsed;
  }
  const text = base64 ?? '';
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new UsageError('--base64 is not base64 (A-Z, a-z, 0-9, +, / and = padding, in groups of 4)');
  }
  return Buffer.from(text, 'base64');
}
