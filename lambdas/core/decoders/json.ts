/**
 * The JSON property-value format's decoder: the payload is JSON text, within the
 * payload limit. What the JSON says (`$id`, `$ts`, `$seq`, metrics) is read by the
 * normalizer, as for every decoder's output. With a field mapping (`POST
 * /v1/telemetry?mapping=<name>`), the mapped id and time fields become `$id` and `$ts`.
 */
import type { ValidationLimits } from '../readings/limits.ts';
import type { Decoded, Decoder } from './decoder.ts';

/** Which fields of a JSON reading hold the device id and time, for devices that cannot send `$id`/`$ts`. */
export interface FieldMapping {
  /** Field holding the device id (instead of `$id`). */
  readonly id: string;
  /** Field holding the device time (instead of `$ts`). */
  readonly time?: string;
}

const NO_WARNINGS: readonly string[] = [];

/** JSON text parsed, or why it is not JSON: the same words for a payload and a callback body. */
export function parseJson(bytes: Buffer): { readonly value: unknown } | { readonly error: string } {
  try {
    return { value: JSON.parse(bytes.toString('utf8')) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

export function jsonDecoder(
  limits: Pick<ValidationLimits, 'maxPayloadBytes'>,
  mapping?: FieldMapping,
): Decoder {
  return {
    name: 'json',
    decode({ bytes }): Decoded {
      if (bytes.length > limits.maxPayloadBytes) {
        return {
          ok: false,
          code: 'payload_too_large',
          reason: `payload is ${bytes.length} bytes; the limit is ${limits.maxPayloadBytes}`,
        };
      }
      const parsed = parseJson(bytes);
      if ('error' in parsed)
        return { ok: false, code: 'invalid_json', reason: `payload is not JSON: ${parsed.error}` };
      if (!mapping) return { ok: true, data: parsed.value, warnings: NO_WARNINGS };
      const value = parsed.value;
      return {
        ok: true,
        data: Array.isArray(value) ? value.map((v) => mapped(v, mapping)) : mapped(value, mapping),
        warnings: NO_WARNINGS,
      };
    },
  };
}

/** One reading with its mapping applied: the mapped id and time fields as `$id` and `$ts`. */
export function mapped(item: unknown, mapping: FieldMapping): unknown {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return item;
  // Own fields only: a mapped field named `constructor` or `__proto__` is absent unless sent.
  const record = item as Record<string, unknown>;
  const { [mapping.id]: _, ...rest } = record;
  const out: Record<string, unknown> = {
    ...rest,
    $id: Object.hasOwn(record, mapping.id) ? record[mapping.id] : undefined,
  };
  if (mapping.time !== undefined && Object.hasOwn(rest, mapping.time)) {
    out.$ts = rest[mapping.time];
    delete out[mapping.time];
  }
  return out;
}
