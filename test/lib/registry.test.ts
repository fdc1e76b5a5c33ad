import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { REGISTRY_TYPE_INDEX } from '../../lambdas/adapters/aws/dynamodb-registry.ts';
import { synthPipeline } from './synth.ts';

describe('the registry and the estate routes', () => {
  const { stack, template } = synthPipeline();

  it('indexes device ids by type, keys only, on attributes every record already has', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'deviceId', KeyType: 'HASH' }],
      GlobalSecondaryIndexes: [
        {
          IndexName: REGISTRY_TYPE_INDEX,
          KeySchema: [
            { AttributeName: 'deviceType', KeyType: 'HASH' },
            { AttributeName: 'deviceId', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ],
    });
  });

  it('routes GET /v1/estate and GET /v1/devices to the query function', () => {
    for (const route of ['GET /v1/estate', 'GET /v1/devices'])
      template.hasResourceProperties('AWS::ApiGatewayV2::Route', {
        RouteKey: route,
        Target: Match.objectLike({
          'Fn::Join': Match.arrayWith([Match.arrayWith([Match.stringLikeRegexp('integrations/')])]),
        }),
      });
  });

  it('tells the query function which ingest function counts the messages, and stays cdk-nag clean', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('GET /v1/devices'),
      Environment: {
        Variables: Match.objectLike({
          INGEST_FUNCTION_NAME: { Ref: Match.stringLikeRegexp('^IngestFunction') },
        }),
      },
    });
    expect(Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-'))).toEqual([]);
  });
});
