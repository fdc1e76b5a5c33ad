/**
 * The estate's traffic from CloudWatch against moto's server: the ingest function's
 * `messages` and `quarantined` metrics (as its EMF lines make them, dimensioned by the
 * function's name), read back as hourly sums by one GetMetricData request.
 */
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cloudwatchTraffic } from '../../lambdas/adapters/aws/cloudwatch-traffic.ts';
import { ingestMetricDimensions } from '../../lambdas/adapters/aws/metrics.ts';
import { skipWithout } from '../support/aws-tools.ts';
import { type Moto, startMoto } from '../support/moto.ts';

const HOUR = 3_600_000;

describe.skipIf(skipWithout('moto_server', 'botocore'))('CloudWatch traffic against moto', () => {
  let moto: Moto;
  beforeAll(async () => {
    moto = await startMoto();
  }, 60_000);
  afterAll(() => moto?.stop());

  it("sums each hour's messages and quarantined of this stage's ingest function only", async () => {
    const client = new CloudWatchClient(moto.clientConfig);
    const start = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    const put = (fn: string, name: string, at: number, value: number) =>
      client.send(
        new PutMetricDataCommand({
          Namespace: 'IotPipeline',
          MetricData: [
            {
              MetricName: name,
              Dimensions: Object.entries(ingestMetricDimensions(fn)).map(([Name, Value]) => ({
                Name,
                Value,
              })),
              Timestamp: new Date(at),
              Value: value,
              Unit: 'Count',
            },
          ],
        }),
      );
    // Two batches in the first hour, one in the second; another stage's function beside.
    await put('ingest-prod', 'messages', start + 60_000, 100);
    await put('ingest-prod', 'messages', start + 120_000, 50);
    await put('ingest-prod', 'quarantined', start + 120_000, 3);
    await put('ingest-prod', 'messages', start + HOUR + 60_000, 10);
    await put('ingest-dev', 'messages', start + 60_000, 9999);
    const traffic = cloudwatchTraffic(client, {
      namespace: 'IotPipeline',
      ingestFunctionName: 'ingest-prod',
    });
    expect(traffic.source).toBe('cloudwatch');
    expect(await traffic.hourly(start, start + 3 * HOUR)).toEqual([
      { hour: start, messages: 150, quarantined: 3 },
      { hour: start + HOUR, messages: 10, quarantined: 0 },
    ]);
  });
});
