/**
 * The one interface every decoder implements: JSON, a Sigfox grammar, a codec in its
 * sandbox. A decoder turns a payload's bytes into data (an object of readings, or an
 * array of them) that the normalizer then checks; it never sees a device id, a time
 * or a queue.
 */
import type { Refusal } from '../readings/rejection.ts';

export interface DecodeInput {
  readonly bytes: Buffer;
  /** LoRaWAN port, when the network says. */
  readonly fPort?: number;
  /** Arrival, epoch ms: handed to codecs as TS013's `recvTime`. */
  readonly receivedAt: number;
}

/**
 * A decoded payload: data for the normalizer; `nothing` when the decoder found nothing
 * to report (a codec's `{ data: {} }`: the raw message is kept, nothing else); or why
 * there is no data.
 */
export type Decoded =
  | {
      readonly ok: true;
      readonly data: unknown;
      readonly warnings: readonly string[];
      readonly nothing?: true;
    }
  | ({ readonly ok: false } & Refusal);

export interface Decoder {
  /** What the decoder is, in reasons and listings: `json`, the device type of a grammar, a codec's file. */
  readonly name: string;
  decode(input: DecodeInput): Decoded;
  /** Many payloads at once, in order, without blocking the thread; what a batch uses when the decoder has it. */
  decodeMany?(inputs: readonly DecodeInput[]): Promise<Decoded[]>;
  /** Frees what the decoder holds (a codec's worker thread). */
  close?(): Promise<void>;
}

/** The decoders of a config's device types, built once (grammars parsed, codecs loaded) and reused. */
export interface Decoders {
  /** The decoder configured for a device type, or undefined (its payloads are JSON). */
  of(deviceType: string): Decoder | undefined;
  /** The device types that have one. */
  readonly types: readonly string[];
  /** Frees every decoder (codec worker threads); the set is not used afterwards. */
  close(): Promise<void>;
}

export const NO_DECODERS: Decoders = { of: () => undefined, types: [], close: async () => undefined };

/** Decoded data, with nothing to report when it is an empty object. */
export function decodedData(data: unknown, warnings: readonly string[]): Decoded {
  const nothing = typeof data === 'object' && data !== null && Object.keys(data).length === 0;
  return nothing ? { ok: true, data, warnings, nothing: true } : { ok: true, data, warnings };
}
