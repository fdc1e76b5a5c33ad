/**
 * Fault injection on the ingest Lambda itself: the production handler (Powertools
 * partial batch responses, the AWS adapters, real SDK v3 clients) over in-process
 * clients that fail S3, Timestream and DynamoDB calls at random, driven by an SQS-like
 * loop (failed messages come back, a message received five times goes to the DLQ, one
 * stored batch in four is delivered again whole). Afterwards: lost 0, duplicates 0.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import {
  awsEstateDeps,
  awsIngestDeps,
  sqsEstateHandler,
  sqsIngestHandler,
} from '../../lambdas/adapters/aws/ingest-lambda.ts';
import type { DeviceRecord } from '../../lambdas/core/estate/alerts.ts';
import { ENV } from '../../lambdas/env.ts';
import { DEFAULT_CONFIG } from '../../lib/config.ts';
import { meteredClients } from '../../tools/cost/metered-aws.ts';
import { checkPrices, emptyUsage } from '../../tools/cost/model.ts';
import { PRICES_FILE } from '../../tools/cost/report.ts';
import { random } from '../../tools/simulator/fleet.ts';
import { mqttMessage, sqsEvent } from '../support/fakes.ts';

const prices = checkPrices(JSON.parse(readFileSync(PRICES_FILE, 'utf8')));
const NO_LATENCY = { s3: 0, timestream: 0, dynamodb: 0, sns: 0, sqs: 0 };
const MAX_RECEIVES = 5;

describe('ingest handler under faults', () => {
  it('stores every message once or dead-letters it, and moves each device on by its stored readings, with S3, Timestream, SQS and DynamoDB failing at random', async () => {
    const rand = random(2026);
    const fault = (service: string, command: string) => {
      if (rand() >= 0.1) return undefined;
      const error = new Error(`${service} ${command}: service unavailable`);
      error.name = 'ServiceUnavailable';
      return error;
    };
    const meter = meteredClients(
      emptyUsage(),
      prices,
      { claims: 'pk', registry: 'deviceId' },
      NO_LATENCY,
      fault,
    );
    const logger = new Logger({ logLevel: 'SILENT' });
    const resources = {
      [ENV.lakeBucket]: 'lake',
      [ENV.claimsTable]: 'claims',
      [ENV.registryTable]: 'registry',
      [ENV.alertTopicArn]: 'arn:aws:sns:us-east-1:123456789012:alerts',
      [ENV.timestreamDatabase]: 'db',
      [ENV.timestreamTable]: 'telemetry',
      [ENV.estateQueueUrls]: 'estate-0,estate-1',
    };
    const handler = sqsIngestHandler(awsIngestDeps(DEFAULT_CONFIG, meter.clients, resources, logger), logger);
    const estate = sqsEstateHandler(awsEstateDeps(DEFAULT_CONFIG, meter.clients, resources), logger);
    const now = Date.now();
    const messages = Array.from({ length: 300 }, (_, i) =>
      mqttMessage(`m${i}`, { $ts: now - 300_000 + i * 100, $seq: i, temp: i }, `dt/thermo/d-${i % 7}`, now),
    );
    const receives = new Map<string, number>();
    const dead: string[] = [];
    /** Messages a delivery of which succeeded. */
    const acknowledged = new Set<string>();
    const queue: { records: typeof messages; again: boolean }[] = [];
    for (let i = 0; i < messages.length; i += 25)
      queue.push({ records: messages.slice(i, i + 25), again: false });
    let invocations = 0;
    while (queue.length > 0) {
      const { records, again } = queue.shift() as (typeof queue)[number];
      const event = sqsEvent(...records);
      let failed: Set<string>;
      try {
        const { batchItemFailures } = await handler(event, { awsRequestId: `r${invocations}` } as Context);
        failed = new Set(batchItemFailures.map((f) => f.itemIdentifier));
      } catch {
        // The invocation failed (Powertools throws when every record did): SQS returns the whole batch.
        failed = new Set(records.map((m) => m.messageId));
      }
      invocations++;
      for (const m of records) if (!failed.has(m.messageId)) acknowledged.add(m.messageId);
      const retry = records.filter((m) => {
        if (!failed.has(m.messageId)) return false;
        const n = (receives.get(m.messageId) ?? 0) + 1;
        receives.set(m.messageId, n);
        if (n < MAX_RECEIVES) return true;
        dead.push(m.messageId);
        return false;
      });
      if (retry.length > 0) queue.push({ records: retry, again: false });
      // The visibility timeout ran out before the delete: the batch comes again whole.
      if (failed.size === 0 && !again && rand() < 0.25) queue.push({ records, again: true });
    }
    expect(invocations).toBeGreaterThan(messages.length / 25); // faults did happen

    const stored = new Map<string, number>();
    for (const [key, body] of meter.objects) {
      if (!key.startsWith('readings/')) continue;
      for (const line of gunzipSync(body).toString().trim().split('\n')) {
        const row = JSON.parse(line) as { message_id: string; metric: string };
        if (row.metric === 'temp') stored.set(row.message_id, (stored.get(row.message_id) ?? 0) + 1);
      }
    }
    const duplicates = [...stored.values()].filter((n) => n > 1).length;
    const lost = messages.filter((m) => !stored.has(m.messageId) && !dead.includes(m.messageId)).length;
    expect({ lost, duplicates }).toEqual({ lost: 0, duplicates: 0 });
    // A dead-lettered message is stored only if an earlier delivery of it succeeded (then
    // it came back whole and failed five times): redriving it stores nothing new.
    expect(dead.filter((id) => stored.has(id) && !acknowledged.has(id))).toEqual([]);
    expect(stored.size).toBeGreaterThan(messages.length / 2); // and most got through

    // The estate queues' windows, with the same faults: a delta that failed comes back,
    // five receives send it to the dead-letter queue; one window in four comes again whole.
    const deltas = meter.sent.splice(0).filter((m) => m.queueUrl.startsWith('estate-'));
    expect(deltas.length).toBeGreaterThan(0);
    const deltaReceives = new Map<string, number>();
    const deadDeltas: string[] = [];
    const windows: { records: typeof deltas; again: boolean }[] = [];
    for (const url of ['estate-0', 'estate-1']) {
      const own = deltas.filter((d) => d.queueUrl === url);
      for (let i = 0; i < own.length; i += 5) windows.push({ records: own.slice(i, i + 5), again: false });
    }
    while (windows.length > 0) {
      const { records, again } = windows.shift() as (typeof windows)[number];
      let failed: Set<string>;
      try {
        const { batchItemFailures } = await estate(sqsEvent(...records), { awsRequestId: 'e' } as Context);
        failed = new Set(batchItemFailures.map((f) => f.itemIdentifier));
      } catch {
        failed = new Set(records.map((d) => d.messageId));
      }
      const retry = records.filter((d) => {
        if (!failed.has(d.messageId)) return false;
        const n = (deltaReceives.get(d.messageId) ?? 0) + 1;
        deltaReceives.set(d.messageId, n);
        if (n < MAX_RECEIVES) return true;
        deadDeltas.push(d.messageId);
        return false;
      });
      if (retry.length > 0) windows.push({ records: retry, again: false });
      if (failed.size === 0 && !again && rand() < 0.25) windows.push({ records, again: true });
    }
    expect(deadDeltas).toEqual([]);
    // Each device's record is where its stored readings took it: last seen at its latest.
    const registry = meter.tables.get('registry') ?? new Map();
    for (let d = 0; d < 7; d++) {
      // Message i is device d-(i % 7)'s, at now - 300 s + i * 100 ms, with temp i.
      const latest = Math.max(
        ...messages.flatMap((m, i) => (i % 7 === d && stored.has(m.messageId) ? [i] : [])),
      );
      const record = JSON.parse(String(registry.get(`d-${d}`)?.record?.S)) as DeviceRecord;
      expect(record.lastSeen).toBe(now - 300_000 + latest * 100);
      expect(record.lastValues.temp).toBe(latest);
    }
  });
});
