/**
 * Duplicate suppression across batches for networks that resend (a format's
 * `resends`): Sigfox retries a callback and reports one frame per base station; The
 * Things Stack retries webhooks. Each reading with a sequence number is claimed for
 * its message; a reading another message claimed first is a duplicate.
 */
import { formatOf } from '../formats/index.ts';
import type { Reading } from '../reading.ts';
import type { ReadingClaims } from './ports.ts';

/**
 * The claim key of a reading: device, sequence number and time, so a counter that
 * wraps (Sigfox at 4096) or restarts (a LoRaWAN rejoin) is not taken for a duplicate.
 */
export function claimKey(reading: Reading): string {
  return `${reading.source}#${reading.deviceId}#${reading.key}@${reading.time}`;
}

/** Whether a reading is claimed: it has a sequence number and its network resends. */
export function claimable(reading: Reading): boolean {
  return reading.seq !== undefined && formatOf(reading.source)?.resends === true;
}

/**
 * The readings no other message claimed first. When the claims cannot be checked, the
 * claimable readings' messages are failed (and retried) rather than risk a duplicate.
 */
export async function claimReadings(
  readings: readonly Reading[],
  claims: ReadingClaims,
  fail: (ids: Iterable<string>, error: Error) => void,
): Promise<{ kept: Reading[]; dropped: number }> {
  const candidates = readings.filter(claimable);
  if (candidates.length === 0) return { kept: [...readings], dropped: 0 };
  let taken: Set<string>;
  try {
    taken = await claims.claim(candidates.map((r) => ({ key: claimKey(r), messageId: r.messageId })));
  } catch (error) {
    fail(new Set(candidates.map((r) => r.messageId)), asError(error));
    return { kept: readings.filter((r) => !candidates.includes(r)), dropped: 0 };
  }
  const kept = readings.filter((r) => !(claimable(r) && taken.has(claimKey(r))));
  return { kept, dropped: readings.length - kept.length };
}

export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
