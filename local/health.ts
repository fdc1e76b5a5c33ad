/**
 * How the local runtime is doing, in one set of figures: `GET /healthz` answers them as
 * JSON (503 when the queue cannot take messages) and `start` prints them as its status line.
 */
import { statfs } from 'node:fs/promises';
import { type Gate, isResponse } from '../lambdas/core/api/gate.ts';
import { type HttpRequest, type HttpResponse, json } from '../lambdas/core/api/http.ts';
import type { QueueStats } from './adapters/queue.ts';

export const HEALTH_PATH = '/healthz';

export interface Health {
  /** False when messages are refused (the queue's journal cannot write); `reason` says why. */
  readonly ok: boolean;
  readonly reason?: string;
  /** Messages waiting, in flight or waiting for a retry. */
  readonly queued: number;
  /** Messages in the queue's journal not yet settled; absent when the queue keeps no journal. */
  readonly journalled?: number;
  /** Messages the ingest finished with (stored, or quarantined). */
  readonly stored: number;
  /** Quarantine records written (a message with three bad readings counts three). */
  readonly quarantined: number;
  readonly deadLettered: number;
  /** Bytes free for this user on the data folder's filesystem; null when it cannot be read. */
  readonly diskFree: number | null;
}

/** The figures of the queue's stats that health reads. */
export type HealthQueueStats = Pick<QueueStats, 'pending' | 'done' | 'deadLettered'> &
  Partial<Pick<QueueStats, 'journalled' | 'durable' | 'failing'>>;

/** The runtime's health now: the queue's figures, the quarantine count and the data folder's free space. */
export async function readHealth(
  stats: HealthQueueStats,
  quarantined: number,
  dataDir: string,
): Promise<Health> {
  const diskFree = await freeBytes(dataDir);
  const figures = {
    queued: stats.pending,
    ...(stats.durable === false || stats.journalled === undefined ? {} : { journalled: stats.journalled }),
    stored: stats.done,
    quarantined,
    deadLettered: stats.deadLettered,
    diskFree,
  };
  if (!stats.failing) return { ok: true, ...figures };
  return {
    ok: false,
    reason: `the queue cannot write its journal in ${dataDir}${diskFree === null ? '' : ` (${diskFree} bytes free)`}: new messages get 503 over HTTP and no PUBACK over MQTT until it can; free some space`,
    ...figures,
  };
}

async function freeBytes(dir: string): Promise<number | null> {
  try {
    const fs = await statfs(dir);
    // bavail, not bfree: the blocks reserved for root are not this process's to use.
    return fs.bavail * fs.bsize;
  } catch {
    return null;
  }
}

/** Answers `GET /healthz` for a key with the `read` scope: 200 with the figures, 503 when not ok. */
export async function handleHealthRequest(
  request: HttpRequest,
  deps: { readonly gate: Gate; readonly health: () => Promise<Health> },
): Promise<HttpResponse> {
  if (request.method !== 'GET')
    return json(405, { error: 'method_not_allowed', message: `Use GET on ${HEALTH_PATH}` }, { allow: 'GET' });
  const caller = await deps.gate.admit(request, 'read');
  if (isResponse(caller)) return caller;
  const health = await deps.health();
  return json(health.ok ? 200 : 503, health);
}

/** The figures on one line, for `start`'s status every 10 s. */
export function healthLine(health: Health): string {
  const mb = (bytes: number) => `${Math.floor(bytes / 1024 / 1024)} MB`;
  return [
    `${health.queued} queued`,
    ...(health.journalled === undefined ? [] : [`${health.journalled} journalled`]),
    `${health.stored} stored`,
    `${health.quarantined} quarantined`,
    `${health.deadLettered} dead-lettered`,
    `disk ${health.diskFree === null ? '?' : mb(health.diskFree)} free`,
    ...(health.ok ? [] : [`NOT OK: ${health.reason}`]),
  ].join(', ');
}
