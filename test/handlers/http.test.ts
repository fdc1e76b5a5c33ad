import { readFileSync } from 'node:fs';
import {
  BatchGetItemCommand,
  DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { keyItem } from '../../lambdas/adapters/aws/dynamodb-keys.ts';
import { createKey } from '../../lambdas/core/access/keys.ts';
import { validateRuntimeConfig } from '../../lambdas/core/config.ts';
import { decodeMessage } from '../../lambdas/core/ingest/decode.ts';
import { DEFAULT_VALIDATION } from '../../lambdas/core/readings/limits.ts';
import { ingestOf } from '../support/fakes.ts';

const sqs = mockClient(SQSClient);
const dynamodb = mockClient(DynamoDBClient);
const made = createKey({ name: 'callbacks', scopes: ['ingest'] }, 0);
const KEY = made.key;
let handler: (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

function request(
  body: string,
  headers: Record<string, string> = {},
  path = '/v1/telemetry',
  query = '',
): APIGatewayProxyEventV2 {
  return {
    rawPath: path,
    rawQueryString: query,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers },
    body,
    isBase64Encoded: false,
    requestContext: { http: { method: 'POST' }, requestId: 'req-1', timeEpoch: Date.now() },
  } as unknown as APIGatewayProxyEventV2;
}

describe('http handler', () => {
  beforeAll(async () => {
    vi.stubEnv('INGEST_QUEUE_URL', 'https://sqs.us-east-1.amazonaws.com/123456789012/ingest');
    vi.stubEnv('KEYS_TABLE', 'keys');
    vi.stubEnv('REGISTRY_TABLE', 'registry');
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
    vi.stubEnv(
      'PIPELINE_RUNTIME_CONFIG',
      JSON.stringify({ sigfoxDownlinks: { '1A2B3C': '0102030405060708' } }),
    );
    ({ handler } = await import('../../lambdas/handlers/http.ts'));
  });
  beforeEach(() => {
    sqs.reset();
    dynamodb.reset();
    sqs.on(SendMessageCommand).resolves({ MessageId: 'sqs-1' });
    dynamodb.on(GetItemCommand).resolves({ Item: keyItem(made.record) });
    dynamodb.on(UpdateItemCommand).resolves({});
    dynamodb.on(BatchGetItemCommand).resolves({ Responses: { registry: [] } });
  });

  it('enqueues an authenticated reading as an envelope the ingest path decodes, then answers 202', async () => {
    // Act
    const response = await handler(request(JSON.stringify({ $id: 'dev-1', temp: 21 })));
    // Assert
    expect(response.statusCode).toBe(202);
    expect(JSON.parse(String(response.body))).toEqual({ accepted: true, messageId: 'sqs-1' });
    const body = sqs.commandCalls(SendMessageCommand)[0]?.args[0].input.MessageBody ?? '';
    const outcome = decodeMessage({ messageId: 'sqs-1', body }, ingestOf(validateRuntimeConfig({})));
    expect(outcome.readings[0]).toMatchObject({ deviceId: 'dev-1', source: 'http', metrics: { temp: 21 } });
  });

  it('accepts the key as x-api-key and reads its record once per 30 s per container', async () => {
    const response = await handler(request('{"$id":"a","t":1}', { authorization: '', 'x-api-key': KEY }));
    expect(response.statusCode).toBe(202);
    await handler(request('{"$id":"a","t":1}'));
    expect(dynamodb.commandCalls(GetItemCommand).length).toBeLessThanOrEqual(1);
  });

  it.each([
    ['a wrong key', request('{}', { authorization: 'Bearer nope' }), 401, 'unauthorized'],
    ['no key', request('{}', { authorization: '' }), 401, 'unauthorized'],
    [
      'a form body',
      request('a=1', { 'content-type': 'application/x-www-form-urlencoded' }),
      415,
      'unsupported_media_type',
    ],
    ['malformed JSON', request('{"temp":'), 400, 'invalid_json'],
    ['an empty body', request(''), 400, 'empty_body'],
    [
      'a body over the limit',
      request(JSON.stringify({ s: 'x'.repeat(DEFAULT_VALIDATION.maxPayloadBytes) })),
      413,
      'payload_too_large',
    ],
    ['an unknown route', request('{}', {}, '/v1/nope'), 404, 'not_found'],
  ])('answers %s with %i and a JSON reason, enqueuing nothing', async (_, event, status, error) => {
    const response = await handler(event);
    expect(response.statusCode).toBe(status);
    const body = JSON.parse(String(response.body));
    expect(body.error).toBe(error);
    expect(body.message.length).toBeGreaterThan(10);
    expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(0);
  });

  it('answers a Sigfox callback with 204 once it is queued, and a BIDIR one with its downlink', async () => {
    const uplink = readFileSync(new URL('../fixtures/sigfox-uplink.json', import.meta.url), 'utf8');
    const bidir = readFileSync(new URL('../fixtures/sigfox-bidir.json', import.meta.url), 'utf8');
    const plain = await handler(request(uplink, { authorization: KEY }, '/v1/sigfox', 'type=tracker'));
    expect(plain.statusCode).toBe(204);
    const body = JSON.parse(sqs.commandCalls(SendMessageCommand)[0]?.args[0].input.MessageBody ?? '{}');
    expect(body).toMatchObject({ source: 'sigfox', topic: '/v1/sigfox', params: { type: 'tracker' } });
    const answer = await handler(request(bidir, {}, '/v1/sigfox'));
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(String(answer.body))).toEqual({ '1A2B3C': { downlinkData: '0102030405060708' } });
  });

  it('answers a The Things Stack uplink with 202 and a webhook of another kind with 400', async () => {
    const uplink = readFileSync(new URL('../fixtures/ttn-uplink.json', import.meta.url), 'utf8');
    expect((await handler(request(uplink, {}, '/v1/ttn'))).statusCode).toBe(202);
    const join = await handler(
      request('{"end_device_ids":{"device_id":"d"},"join_accept":{}}', {}, '/v1/ttn'),
    );
    expect(join.statusCode).toBe(400);
    expect(JSON.parse(String(join.body)).message).toContain('enable only "Uplink message"');
  });

  it('does not acknowledge a callback it could not queue: the network retries it', async () => {
    sqs.on(SendMessageCommand).rejects(new Error('ServiceUnavailable'));
    const uplink = readFileSync(new URL('../fixtures/sigfox-uplink.json', import.meta.url), 'utf8');
    const response = await handler(request(uplink, {}, '/v1/sigfox'));
    expect(response.statusCode).toBe(503);
    expect(JSON.parse(String(response.body))).toEqual({
      error: 'unavailable',
      message: 'The message could not be queued; send it again',
    });
  });
});
