import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ALERTS_PATH } from '../../lambdas/core/api/alerts.ts';
import { DEVICES_PATH } from '../../lambdas/core/api/devices.ts';
import { ESTATE_PATH } from '../../lambdas/core/api/estate.ts';
import { QUARANTINE_PATH } from '../../lambdas/core/api/quarantine.ts';
import { methodsOf } from '../../lambdas/core/formats/format.ts';
import { HTTP_FORMATS } from '../../lambdas/core/formats/index.ts';
import { type Analytics, QUERY_API_TABLES } from './analytics.ts';
import type { ApiKeys } from './api-keys.ts';
import type { Ingest } from './ingest.ts';
import { PipelineFunction } from './pipeline-function.ts';
import type { Registry } from './registry.ts';
import type { TimeSeries } from './timeseries.ts';

/** A read route (`GET`) and the function that answers it: what the console's API mirrors. */
export interface ReadRoute {
  readonly path: string;
  readonly function: lambda.IFunction;
}

/** What the read routes read. */
export interface HttpQuerySources {
  /** Athena over the lake, for `GET /v1/devices/{id}/readings|daily`. */
  readonly analytics: Analytics;
  /**
   * When Timestream is on: recent readings (within its memory store) come from it.
   *
   * @default every range from Athena
   */
  readonly timeseries?: TimeSeries;
}

export interface HttpApiProps {
  /** Where accepted messages go: the HTTP function enqueues them on its queue. */
  readonly ingest: Ingest;
  /** The keys every route checks (scopes, devices, per-key limits). */
  readonly keys: ApiKeys;
  /** The device registry: the HTTP function reads which way in each device is known from. */
  readonly registry: Registry;
  /**
   * The read side: `GET /v1/devices` (the registry) and `GET /v1/devices/{id}/readings|daily`
   * (Athena), served by their own function.
   *
   * @default no read routes
   */
  readonly query?: HttpQuerySources;
  /** JSON of the run-time config (validation limits), from `runtimeConfigJson`; built into the bundle. */
  readonly runtimeConfig: string;
  /**
   * Steady requests per second before API Gateway answers 429.
   *
   * @default 100
   */
  readonly throttleRateLimit?: number;
  /**
   * Burst above the steady rate.
   *
   * @default 200
   */
  readonly throttleBurstLimit?: number;
}

/**
 * The HTTP way in: an API Gateway HTTP API with the `/v1/` routes, stage throttling
 * and access logs, one function for the ingest routes (POST, and GET where a network
 * calls back with GET: Sigfox) and one for the read routes. Both
 * check every request's key against the keys table (scope, devices, its own throttle),
 * answer 4xx with a JSON reason, and the POST function acknowledges only after the
 * message is in the ingest queue.
 */
export class HttpApi extends Construct {
  public readonly api: apigw.HttpApi;
  /** Serves the read routes, when `query` is given. */
  public readonly queryFunction?: PipelineFunction;
  public readonly function: PipelineFunction;
  /**
   * Every `GET` read route and its function, never an ingest route: the console's API
   * (behind sign-in) serves these same paths with the same functions.
   */
  public readonly readRoutes: ReadRoute[] = [];

  constructor(scope: Construct, id: string, props: HttpApiProps) {
    super(scope, id);
    const rateLimit = props.throttleRateLimit ?? 100;
    const burstLimit = props.throttleBurstLimit ?? 200;
    if (!Number.isInteger(rateLimit) || !Number.isInteger(burstLimit) || rateLimit < 1 || burstLimit < 1) {
      throw new Error(`HttpApi: throttle limits must be >= 1, got rate ${rateLimit} and burst ${burstLimit}`);
    }

    this.function = new PipelineFunction(this, 'Function', {
      handler: 'http',
      description: 'Authenticates HTTP telemetry and callbacks and enqueues them',
      memorySize: 256,
      // Sigfox gives a callback 10 s; answer well within it.
      timeout: Duration.seconds(5),
      runtimeConfig: props.runtimeConfig,
    });
    props.ingest.grantEnqueue(this.function);
    props.keys.grantCheck(this.function);
    props.registry.grantRead(this.function);

    this.api = new apigw.HttpApi(this, 'Api', {
      description: 'IoT pipeline HTTP ingress',
      createDefaultStage: false,
    });
    addLoggedStage(
      this,
      this.api,
      'AccessLogs',
      { rateLimit, burstLimit },
      {
        method: '$context.httpMethod',
        responseLength: '$context.responseLength',
      },
    );

    const integration = new HttpLambdaIntegration('Integration', this.function, {
      payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
    });
    // Each way in with the methods its format takes (Sigfox: GET callbacks too), all on
    // the ingest function: a GET callback is a message, not a query.
    for (const { route } of HTTP_FORMATS) {
      this.api.addRoutes({
        path: route.path,
        methods: methodsOf(route).map((method) => apigw.HttpMethod[method]),
        integration,
      });
    }
    if (props.query) {
      const { analytics, timeseries } = props.query;
      this.queryFunction = new PipelineFunction(this, 'QueryFunction', {
        handler: 'query',
        description: 'Answers GET /v1/devices and the readings/daily query API',
        memorySize: 256,
        // API Gateway gives an integration 30 s; the handler waits 20 for Athena.
        timeout: Duration.seconds(29),
        // The alert rules: an open alert's severity, metric and threshold (GET /v1/alerts).
        runtimeConfig: props.runtimeConfig,
      });
      timeseries?.grantSelect(this.queryFunction);
      props.keys.grantCheck(this.queryFunction);
      props.registry.grantList(this.queryFunction);
      // The series route reads compacted days from curated_readings, and lists which days are.
      // GET /v1/alerts reads the alert history, GET /v1/quarantine the quarantine (payloads included).
      // GET /v1/estate reads each day's uptime from daily_uptime, and the ingest function's counts.
      // GET /v1/devices/{id}/raw reads a device's last messages from raw (the payloads /v1/quarantine serves too).
      analytics.grantQuery(this.queryFunction, {
        tables: [...QUERY_API_TABLES, 'curated_readings', 'alerts', 'quarantine', 'daily_uptime', 'raw'],
      });
      props.ingest.grantReadMetrics(this.queryFunction);
      analytics.lake.addEnvironment(this.queryFunction);
      const queries = new HttpLambdaIntegration('QueryIntegration', this.queryFunction, {
        payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
      });
      for (const path of [
        DEVICES_PATH,
        `${DEVICES_PATH}/{id}/readings`,
        `${DEVICES_PATH}/{id}/daily`,
        `${DEVICES_PATH}/{id}/series`,
        `${DEVICES_PATH}/{id}/raw`,
        ALERTS_PATH,
        QUARANTINE_PATH,
        ESTATE_PATH,
      ]) {
        this.api.addRoutes({ path, methods: [apigw.HttpMethod.GET], integration: queries });
        this.readRoutes.push({ path, function: this.queryFunction });
      }
    }
    Validations.of(this.api).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason:
        'Every route is authenticated and authorized by scope in the function (keys table: hash compared in constant time, scopes, devices, per-key throttle; 401/403/429 with a JSON reason). Sigfox sends a key only as a fixed header value, either header may carry it, and a Lambda authorizer measured slower and dearer (README, Security).',
    });
  }

  /** The base URL callers POST to (`https://<id>.execute-api.<region>.amazonaws.com`). */
  get url(): string {
    return this.api.apiEndpoint;
  }
}

/**
 * The `$default` stage of an HTTP API: auto-deployed, throttled, its access log (a month
 * in `logGroupId`) one JSON line a request with the fields every API logs and `fields`.
 */
export function addLoggedStage(
  scope: Construct,
  api: apigw.HttpApi,
  logGroupId: string,
  throttle: { readonly rateLimit: number; readonly burstLimit: number },
  fields: Readonly<Record<string, string>>,
): void {
  const accessLogs = new logs.LogGroup(scope, logGroupId, {
    retention: logs.RetentionDays.ONE_MONTH,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  api.addStage('DefaultStage', {
    stageName: '$default',
    autoDeploy: true,
    throttle,
    accessLogSettings: {
      destination: new apigw.LogGroupLogDestination(accessLogs),
      format: AccessLogFormat.custom(
        JSON.stringify({
          requestId: '$context.requestId',
          ip: '$context.identity.sourceIp',
          requestTime: '$context.requestTime',
          route: '$context.routeKey',
          status: '$context.status',
          ...fields,
          latency: '$context.integrationLatency',
          error: '$context.integrationErrorMessage',
        }),
      ),
    },
  });
}
