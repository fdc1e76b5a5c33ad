import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Aws, Duration, Fn, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpUserPoolAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import { addLoggedStage, type HttpApi } from './http-api.ts';

/** Where `npm run console:build` writes the page, relative to the working directory (where `cdk.json` is). */
export const CONSOLE_DIST = 'console/dist';

/** The file the page reads its settings from, under the site root (see `console/src/config.ts`). */
export const CONSOLE_CONFIG_KEY = 'console/config.json';

export interface ConsoleProps {
  /** Stage name: part of the sign-in domain (`iot-pipeline-<stage>-<account>`). */
  readonly stage: string;
  /** The HTTP API whose read routes ({@link HttpApi.readRoutes}) the console calls, behind sign-in. */
  readonly http: HttpApi;
  /** The bucket that receives S3 server access logs (the lake's), under `console/`. */
  readonly accessLogs: s3.IBucket;
  /**
   * The built page: `index.html` and `console/*` (`npm run console:build`).
   *
   * @default `console/dist` under the working directory
   */
  readonly assetsPath?: string;
  /**
   * Steady requests per second of the console's API stage before API Gateway answers 429.
   *
   * @default 20
   */
  readonly throttleRateLimit?: number;
  /**
   * Burst above the steady rate.
   *
   * @default 40
   */
  readonly throttleBurstLimit?: number;
}

/**
 * The web console on AWS: the page in a private S3 bucket served by CloudFront through
 * origin access control, people signing in through a Cognito user pool's hosted login
 * (authorization code with PKCE, no client secret: the page is public code), and the read
 * API on the same origin (`/v1/*` on the distribution), so the browser sends no
 * cross-origin request and needs no CORS.
 *
 * The read routes live twice: on the HTTP API with API keys checked in the function (as
 * scripts and dashboards call them), and on this construct's own HTTP API with a JWT
 * authorizer on every route. They cannot share one API: a JWT authorizer answers 401 to
 * any request without a valid token before the function runs, API keys included. This
 * API has the read routes only, so a signed-in person can never reach an ingest route, and
 * the function's gate grants a verified token the read scope only.
 */
export class Console extends Construct {
  public readonly bucket: s3.Bucket;
  public readonly distribution: cloudfront.Distribution;
  public readonly userPool: cognito.UserPool;
  public readonly userPoolClient: cognito.UserPoolClient;
  public readonly domain: cognito.UserPoolDomain;
  /** The read routes behind sign-in, the origin of the distribution's `/v1/*`. */
  public readonly api: apigw.HttpApi;

  constructor(scope: Construct, id: string, props: ConsoleProps) {
    super(scope, id);
    const assetsPath = resolve(props.assetsPath ?? CONSOLE_DIST);
    if (!existsSync(join(assetsPath, 'index.html'))) {
      throw new Error(
        `Console: assetsPath ${assetsPath} has no index.html: build the console first (npm run console:build), or set console.enabled to false`,
      );
    }
    const rateLimit = props.throttleRateLimit ?? 20;
    const burstLimit = props.throttleBurstLimit ?? 40;
    if (!Number.isInteger(rateLimit) || !Number.isInteger(burstLimit) || rateLimit < 1 || burstLimit < 1) {
      throw new Error(`Console: throttle limits must be >= 1, got rate ${rateLimit} and burst ${burstLimit}`);
    }
    if (props.http.readRoutes.length === 0) {
      throw new Error('Console: http has no read routes (give HttpApi its query sources)');
    }

    // Not versioned: the page is rebuilt from the repository on every deploy and the
    // deployment replaces it whole (prune); old bundles would be kept for no reader.
    this.bucket = new s3.Bucket(this, 'Assets', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: props.accessLogs,
      serverAccessLogsPrefix: 'console/',
      // Nothing in it is data: a destroy takes it, and a deploy makes it again.
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });

    // Made before the distribution so the distribution can take the API as its origin;
    // the authorizer (which needs the client, which needs the distribution's URL) after.
    this.api = new apigw.HttpApi(this, 'Api', {
      description: 'IoT pipeline console: the read routes, behind sign-in',
      createDefaultStage: false,
    });

    const { region, urlSuffix } = Stack.of(this);
    // Globally unique per region: the stage and the account, both fixed for a stack.
    const domainPrefix = Fn.join('-', ['iot-pipeline', props.stage, Aws.ACCOUNT_ID]);
    const login = `https://${domainPrefix}.auth.${region}.amazoncognito.com`;
    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: `IoT pipeline console (${props.stage})`,
      defaultRootObject: 'index.html',
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      // North America and Europe only: the cheapest price class; others are served from them.
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: this.securityHeaders(login),
        compress: true,
      },
      additionalBehaviors: {
        '/v1/*': {
          origin: new origins.HttpOrigin(`${this.api.apiId}.execute-api.${region}.${urlSuffix}`, {
            protocolPolicy: cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            originSslProtocols: [cloudfront.OriginSslPolicy.TLS_V1_2],
          }),
          viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
          // The console only reads: CloudFront itself refuses POST, PUT and DELETE here.
          allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
          // Never cached, so one person's answer is never another's; with caching off,
          // this policy forwards the Authorization header (and all but Host, which
          // API Gateway needs to be its own).
          cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
          originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
          responseHeadersPolicy: cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
        },
      },
    });
    const url = `https://${this.distribution.distributionDomainName}`;
    const distributionFindings: [string, string][] = [
      [
        'AwsSolutions-CFR1',
        'No geo restriction: the people who run devices sign in from wherever they are; every API request needs a signed-in user.',
      ],
      [
        'AwsSolutions-CFR2',
        'No WAF web ACL (a fixed monthly charge per ACL and rule): the page is static, every /v1 request is verified by the JWT authorizer and throttled by the API stage, and the console only reads.',
      ],
      [
        'AwsSolutions-CFR3',
        "No CloudFront standard logs: they need a bucket with ACLs enabled, which the stack keeps off everywhere; every /v1 request is in the console API's access log (with the user), every page fetch in the bucket's S3 server access log.",
      ],
      [
        'AwsSolutions-CFR4',
        "The distribution uses CloudFront's *.cloudfront.net certificate, whose minimum protocol CloudFront sets; a higher minimum needs a custom domain and its ACM certificate, which the stack does not own.",
      ],
    ];
    for (const [id, reason] of distributionFindings)
      Validations.of(this.distribution).acknowledge({ id, reason });

    this.userPool = new cognito.UserPool(this, 'Users', {
      // People are invited by an operator (`iot-pipeline users add`), never sign themselves up.
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      autoVerify: { email: true },
      keepOriginal: { email: true },
      standardAttributes: { email: { required: true, mutable: true } },
      passwordPolicy: {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      // Required, by authenticator app: the console shows every device of the stage, and a
      // password alone is one phishing page away. No SMS (it needs an SNS role and is billed
      // per message), so each person sets up an app at first sign-in.
      mfa: cognito.Mfa.REQUIRED,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      featurePlan: cognito.FeaturePlan.LITE,
      userInvitation: {
        emailSubject: `Your IoT pipeline console (${props.stage}) account`,
        emailBody: `Sign in at ${url} as {username} with the temporary password {####} (valid 3 days); you will choose a new one and set up an authenticator app.`,
      },
      // People's accounts: kept on destroy, like the keys table.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.userPool).acknowledge({
      id: 'AwsSolutions-COG8',
      reason:
        'Threat protection (advanced security) needs the Plus feature plan, billed per active user; the pool takes no sign-ups, users are created by an operator, MFA is required, and Cognito locks out repeated failed sign-ins on every plan.',
    });

    this.domain = this.userPool.addDomain('Login', { cognitoDomain: { domainPrefix } });

    this.userPoolClient = this.userPool.addClient('Client', {
      // The page is public code: a secret in it would be no secret. PKCE instead.
      generateSecret: false,
      authFlows: {},
      preventUserExistenceErrors: true,
      supportedIdentityProviders: [cognito.UserPoolClientIdentityProvider.COGNITO],
      oAuth: {
        flows: { authorizationCodeGrant: true },
        scopes: [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
        callbackUrls: [`${url}/`],
        logoutUrls: [`${url}/`],
      },
      accessTokenValidity: Duration.hours(1),
      idTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.hours(12),
      enableTokenRevocation: true,
    });

    // Every route of this API needs a token of this pool for this client.
    const authorizer = new HttpUserPoolAuthorizer('SignedIn', this.userPool, {
      userPoolClients: [this.userPoolClient],
    });
    addLoggedStage(
      this,
      this.api,
      'ApiAccessLogs',
      { rateLimit, burstLimit },
      {
        user: '$context.authorizer.claims.sub',
        authorizerError: '$context.authorizer.error',
      },
    );
    // One integration per function (an integration belongs to one API), one route per read path.
    const integrations = new Map<lambda.IFunction, HttpLambdaIntegration>();
    for (const route of props.http.readRoutes) {
      let integration = integrations.get(route.function);
      if (!integration) {
        integration = new HttpLambdaIntegration(`Integration${integrations.size}`, route.function, {
          payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
        });
        integrations.set(route.function, integration);
      }
      this.api.addRoutes({ path: route.path, methods: [apigw.HttpMethod.GET], integration, authorizer });
    }

    const deployment = new s3deploy.BucketDeployment(this, 'Deployment', {
      destinationBucket: this.bucket,
      sources: [
        // A config.json left in the build (a local run's) never ships: the one below does.
        s3deploy.Source.asset(assetsPath, { exclude: [CONSOLE_CONFIG_KEY] }),
        // What the page needs to sign in and call the API, known only once deployed.
        s3deploy.Source.jsonData(CONSOLE_CONFIG_KEY, {
          apiBase: '',
          auth: {
            kind: 'cognito',
            region,
            userPoolId: this.userPool.userPoolId,
            clientId: this.userPoolClient.userPoolClientId,
            domain: login,
            redirectUri: `${url}/`,
            scopes: ['openid', 'email'],
          },
        }),
      ],
      prune: true,
      distribution: this.distribution,
      distributionPaths: ['/index.html', '/console/*'],
      memoryLimit: 256,
    });
    this.acknowledgeDeployment(deployment);
  }

  /** cdk-nag's findings on CDK's own deployment function (one per stack), each with why it needs it. */
  private acknowledgeDeployment(deployment: s3deploy.BucketDeployment): void {
    const handler = deployment.handlerRole.node.scope;
    if (!handler) return;
    const stack = Stack.of(this);
    const bucketId = stack.getLogicalId(this.bucket.node.defaultChild as s3.CfnBucket);
    const copies =
      'CDK BucketDeployment copies the built page from the CDK asset bucket into the console bucket and deletes what the new build no longer has (prune)';
    const findings: [string, string][] = [
      ['AwsSolutions-IAM5[Action::s3:GetObject*]', `${copies}: it reads the asset object.`],
      ['AwsSolutions-IAM5[Action::s3:GetBucket*]', `${copies}: it reads the buckets' locations.`],
      ['AwsSolutions-IAM5[Action::s3:List*]', `${copies}: it lists both buckets to compare them.`],
      [
        'AwsSolutions-IAM5[Action::s3:DeleteObject*]',
        `${copies}: it deletes stale files of the console bucket.`,
      ],
      ['AwsSolutions-IAM5[Action::s3:Abort*]', `${copies}: it aborts its own failed multipart uploads.`],
      [
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*]',
        `${copies}: the asset's name is a content hash, known only at synth.`,
      ],
      [
        `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/*]`,
        `${copies}: every file of the page, in its bucket only.`,
      ],
      [
        'AwsSolutions-IAM5[Resource::*]',
        'CDK BucketDeployment invalidates the page in CloudFront after a deploy (cloudfront:CreateInvalidation, GetInvalidation), which CDK grants on all distributions.',
      ],
      [
        'AwsSolutions-L1',
        "CDK BucketDeployment's handler runs on the Python runtime CDK pins and tests with its AWS CLI layer; it runs only during deploys.",
      ],
    ];
    for (const [id, reason] of findings) Validations.of(handler).acknowledge({ id, reason });
  }

  /** The console's URL (`https://<id>.cloudfront.net`). */
  get url(): string {
    return `https://${this.distribution.distributionDomainName}`;
  }

  /**
   * Security headers on every page response: HSTS, no sniffing, no framing, no referrer
   * (the sign-in code is in the URL), and a content security policy that lets the page load
   * only its own files and talk only to its own origin and the sign-in domain (`connect-src`:
   * the page POSTs the code and the refresh token to `<login>/oauth2/token`). Going to the
   * hosted login and to `/logout` is a top-level navigation, which no directive here covers;
   * the page submits no form anywhere but itself.
   */
  private securityHeaders(login: string): cloudfront.ResponseHeadersPolicy {
    return new cloudfront.ResponseHeadersPolicy(this, 'SecurityHeaders', {
      comment: 'IoT pipeline console: security headers',
      securityHeadersBehavior: {
        contentSecurityPolicy: {
          contentSecurityPolicy: [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            `connect-src 'self' ${login}`,
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
          ].join('; '),
          override: true,
        },
        strictTransportSecurity: {
          accessControlMaxAge: Duration.days(730),
          includeSubdomains: true,
          override: true,
        },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.NO_REFERRER, override: true },
      },
    });
  }
}
