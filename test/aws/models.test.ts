/**
 * The request check itself: AWS's models, read from botocore, refuse what AWS refuses.
 * The first row is the finding that started it: the query API asked Athena for 1,001
 * rows a page, AWS's maximum being 1,000, while mocks and moto accepted it.
 */
import { describe, expect, it } from 'vitest';
import { checkInput, serviceModel } from '../support/aws-models.ts';
import { skipWithout } from '../support/aws-tools.ts';

const check = (service: string, operation: string, input: unknown) => {
  const model = serviceModel(service);
  if (!model) throw new Error(`no model for ${service}`);
  return checkInput(model, operation, input).map((v) => `${v.member} ${v.constraint}`);
};

describe.skipIf(skipWithout('botocore'))("requests checked against AWS's service models", () => {
  it.each([
    [
      'Athena',
      'GetQueryResults',
      { QueryExecutionId: 'q', MaxResults: 1001 },
      'MaxResults value 1001 is above the maximum 1000',
    ],
    ['DynamoDB', 'PutItem', { Item: {} }, 'TableName is required'],
    [
      'Athena',
      'StartQueryExecution',
      { QueryString: 'SELECT 1', WorkGroup: 'no spaces' },
      'WorkGroup "no spaces" does not match the pattern',
    ],
    [
      'Timestream Write',
      'WriteRecords',
      { DatabaseName: 'd', TableName: 't', Records: Array(101).fill({}) },
      'Records list length 101 is above the maximum 100',
    ],
    [
      'SNS',
      'PublishBatch',
      { TopicArn: 'arn', PublishBatchRequestEntries: [{ Id: '1' }] },
      'PublishBatchRequestEntries[0].Message is required',
    ],
    [
      'S3',
      'PutObject',
      { Bucket: 'b', Key: 'k', ContentEncoding: 'gzip', ACL: 'public' },
      'ACL "public" is not one of',
    ],
    ['IoT', 'CreateThing', { thingName: 'a b' }, 'thingName "a b" does not match the pattern'],
  ])('%s.%s: %j is refused', (service, operation, input, expected) => {
    expect(check(service, operation, input).join('\n')).toContain(expected);
  });

  it('accepts what AWS accepts', () => {
    expect(check('Athena', 'GetQueryResults', { QueryExecutionId: 'q', MaxResults: 1000 })).toEqual([]);
    expect(check('SQS', 'SendMessage', { QueueUrl: 'https://q', MessageBody: '{}' })).toEqual([]);
  });
});
