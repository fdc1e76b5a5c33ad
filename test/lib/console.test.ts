/**
 * The web console on AWS (`console.enabled`): the page in a private bucket behind CloudFront
 * with origin access control, the Cognito user pool and its hosted login, and the read
 * routes on their own API behind a JWT authorizer. Synthesized once, with cdk-nag on, from a
 * stand-in of `console/dist` made here.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_FORMATS } from '../../lambdas/core/formats/index.ts';
import { validateConfig } from '../../lib/config.ts';
import { loadConfig } from '../../lib/config-sources.ts';
import { CONSOLE_CONFIG_KEY, Console } from '../../lib/constructs/console.ts';
import type { HttpApi } from '../../lib/constructs/http-api.ts';
import { PipelineStack } from '../../lib/pipeline-stack.ts';
import { cfnLint, skipWithout } from '../support/aws-tools.ts';

/** As `test/lib/synth.ts`, with the console's assets taken from `assets`. */
function synth(context: Record<string, unknown>, assets: string) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } });
  const config = loadConfig((key) => app.node.tryGetContext(key));
  const stack = new PipelineStack(app, `IotPipeline-${config.stage}`, { config, consoleAssetsPath: assets });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const assembly = app.synth();
  return { template: Template.fromStack(stack), outdir: assembly.directory };
}

type Resources = Record<string, { Properties: Record<string, unknown> }>;

/** A CloudFormation string value as text, pseudo parameters and references as `<name>`. */
function render(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if (Array.isArray(v['Fn::Join'])) {
    const [separator, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(render).join(separator);
  }
  if (typeof v.Ref === 'string') return `<${v.Ref}>`;
  throw new Error(`render: ${JSON.stringify(value)}`);
}

describe('Console (console.enabled)', () => {
  let dir: string;
  let on: Template;
  let onDir: string;
  let off: Template;
  let offAgain: Template;
  beforeAll(() => {
    // Arrange: a built page as `npm run console:build` leaves it
    dir = mkdtempSync(join(tmpdir(), 'console-dist-'));
    mkdirSync(join(dir, 'console'));
    writeFileSync(
      join(dir, 'index.html'),
      '<!doctype html><script type="module" src="console/main.js"></script>',
    );
    writeFileSync(join(dir, 'console', 'main.js'), 'export {};');
    // Act: on, off (the default), and off when the page is not even built
    ({ template: on, outdir: onDir } = synth({ iotPipeline: { console: { enabled: true } } }, dir));
    off = synth({}, dir).template;
    offAgain = synth({ iotPipeline: { console: { enabled: false } } }, join(dir, 'missing')).template;
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('synthesizes with no unacknowledged cdk-nag finding, each acknowledgement with its reason', () => {
    // The synth in beforeAll throws on any unacknowledged finding; each acknowledgement in
    // lib/constructs/console.ts carries its reason. Here: that it synthesized the console.
    on.resourceCountIs('AWS::Cognito::UserPool', 1);
    on.resourceCountIs('AWS::CloudFront::Distribution', 1);
  });

  it('leaves the stack unchanged when off: the same template with or without a built page', () => {
    expect(off.toJSON()).toEqual(offAgain.toJSON());
    for (const type of [
      'AWS::CloudFront::Distribution',
      'AWS::CloudFront::OriginAccessControl',
      'AWS::Cognito::UserPool',
      'Custom::CDKBucketDeployment',
    ]) {
      off.resourceCountIs(type, 0);
    }
    off.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    expect(Object.keys(off.toJSON().Outputs)).not.toContain('ConsoleUrl');
    // And turning it on adds resources without changing the pipeline's own.
    const pipeline = off.toJSON().Resources as Resources;
    const withConsole = on.toJSON().Resources as Resources;
    const changed = Object.keys(pipeline).filter(
      (id) => JSON.stringify(pipeline[id]) !== JSON.stringify(withConsole[id]),
    );
    // The lake's access-log bucket policy lets S3 deliver the console bucket's logs too;
    // the query function may be invoked by the console's API (new permissions, not changes).
    expect(changed.filter((id) => !/AccessLogsPolicy/.test(id))).toEqual([]);
  });

  it('keeps the page in a private, encrypted, TLS-only bucket, logged to the access-log bucket', () => {
    on.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      LoggingConfiguration: { LogFilePrefix: 'console/' },
      VersioningConfiguration: Match.absent(),
    });
  });

  it('serves it through CloudFront with OAC, the bucket readable by that distribution only', () => {
    on.resourceCountIs('AWS::CloudFront::CloudFrontOriginAccessIdentity', 0);
    on.hasResourceProperties('AWS::CloudFront::OriginAccessControl', {
      OriginAccessControlConfig: { OriginAccessControlOriginType: 's3', SigningBehavior: 'always' },
    });
    const policies = Object.values(on.findResources('AWS::S3::BucketPolicy')) as Resources[string][];
    const reads = policies
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement)
      .filter(
        (s) => s.Effect === 'Allow' && JSON.stringify(s.Principal).includes('cloudfront.amazonaws.com'),
      );
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatchObject({
      Action: 's3:GetObject',
      Condition: {
        StringEquals: {
          'AWS:SourceArn': {
            'Fn::Join': [
              '',
              expect.arrayContaining([
                ':distribution/',
                { Ref: expect.stringMatching(/^ConsoleDistribution/) },
              ]),
            ],
          },
        },
      },
    });
  });

  it('answers HTTPS only, index.html at the root, with security headers', () => {
    on.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: {
        DefaultRootObject: 'index.html',
        DefaultCacheBehavior: {
          ViewerProtocolPolicy: 'redirect-to-https',
          ResponseHeadersPolicyId: { Ref: Match.stringLikeRegexp('^ConsoleSecurityHeaders') },
        },
        CacheBehaviors: [
          Match.objectLike({
            PathPattern: '/v1/*',
            ViewerProtocolPolicy: 'https-only',
            AllowedMethods: ['GET', 'HEAD', 'OPTIONS'],
            // Managed CachingDisabled and AllViewerExceptHostHeader: Authorization reaches the API.
            CachePolicyId: '4135ea2d-6df8-44a3-9df3-4b5a84be39ad',
            OriginRequestPolicyId: 'b689b0a8-53d0-40ab-baf2-68738e2966ac',
          }),
        ],
      },
    });
    on.hasResourceProperties('AWS::CloudFront::ResponseHeadersPolicy', {
      ResponseHeadersPolicyConfig: {
        SecurityHeadersConfig: {
          StrictTransportSecurity: Match.objectLike({
            AccessControlMaxAgeSec: 63_072_000,
            IncludeSubdomains: true,
          }),
          ContentTypeOptions: { Override: true },
          FrameOptions: { FrameOption: 'DENY', Override: true },
          ReferrerPolicy: { ReferrerPolicy: 'no-referrer', Override: true },
          ContentSecurityPolicy: Match.objectLike({
            ContentSecurityPolicy: Match.objectLike({ 'Fn::Join': Match.anyValue() }),
          }),
        },
      },
    });
    const csp = JSON.stringify(on.findResources('AWS::CloudFront::ResponseHeadersPolicy'));
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
  });

  it("lets the page reach the hosted login's token endpoint (connect-src), and no other origin", () => {
    const [policy] = Object.values(on.findResources('AWS::CloudFront::ResponseHeadersPolicy'));
    const properties = (policy?.Properties ?? {}) as Record<
      string,
      Record<string, Record<string, Record<string, unknown>>>
    >;
    const config = properties.ResponseHeadersPolicyConfig?.SecurityHeadersConfig?.ContentSecurityPolicy;
    const directives = Object.fromEntries(
      render(config?.ContentSecurityPolicy)
        .split('; ')
        .map((d) => [d.split(' ')[0], d.split(' ').slice(1)]),
    );
    // The same origin the deployment writes as auth.domain (see the settings test).
    const login = 'https://iot-pipeline-dev-<AWS::AccountId>.auth.<AWS::Region>.amazoncognito.com';
    expect(directives['connect-src']).toEqual(["'self'", login]);
    expect(directives['form-action']).toEqual(["'self'"]);
    expect(directives['default-src']).toEqual(["'none'"]);
    expect(directives['script-src']).toEqual(["'self'"]);
  });

  it('lets only invited people sign in: no self sign-up, strong passwords, MFA required, code flow without secret', () => {
    on.hasResourceProperties('AWS::Cognito::UserPool', {
      AdminCreateUserConfig: Match.objectLike({ AllowAdminCreateUserOnly: true }),
      MfaConfiguration: 'ON',
      EnabledMfas: ['SOFTWARE_TOKEN_MFA'],
      Policies: {
        PasswordPolicy: {
          MinimumLength: 12,
          RequireLowercase: true,
          RequireUppercase: true,
          RequireNumbers: true,
          RequireSymbols: true,
          TemporaryPasswordValidityDays: 3,
        },
      },
    });
    on.hasResourceProperties('AWS::Cognito::UserPoolDomain', {
      Domain: { 'Fn::Join': ['-', ['iot-pipeline-dev', { Ref: 'AWS::AccountId' }]] },
    });
    const [client] = Object.values(on.findResources('AWS::Cognito::UserPoolClient')) as Resources[string][];
    expect(client?.Properties).toMatchObject({
      GenerateSecret: false,
      AllowedOAuthFlows: ['code'],
      AllowedOAuthFlowsUserPoolClient: true,
      AllowedOAuthScopes: ['openid', 'email'],
      SupportedIdentityProviders: ['COGNITO'],
    });
    const callbacks = JSON.stringify(client?.Properties.CallbackURLs);
    expect(callbacks).toContain('ConsoleDistribution');
    expect(JSON.stringify(client?.Properties.LogoutURLs)).toBe(callbacks);
  });

  it('puts the JWT authorizer on every read route of the console API, and no ingest route there', () => {
    const routes = Object.values(on.findResources('AWS::ApiGatewayV2::Route')) as Resources[string][];
    const consoleApi = Object.keys(on.findResources('AWS::ApiGatewayV2::Api')).find((id) =>
      id.startsWith('ConsoleApi'),
    );
    const isConsole = (r: Resources[string]) =>
      JSON.stringify(r.Properties.ApiId) === JSON.stringify({ Ref: consoleApi });
    const behindSignIn = routes.filter(isConsole);
    const keyed = routes.filter((r) => !isConsole(r));
    const ingestPaths = new Set(HTTP_FORMATS.map(({ route }) => route.path));
    const pathOf = (r: Resources[string]) => String(r.Properties.RouteKey).split(' ')[1] ?? '';
    // The same read routes as the keys' API (whatever they are now), and nothing else.
    const keyedReads = keyed
      .filter((r) => String(r.Properties.RouteKey).startsWith('GET ') && !ingestPaths.has(pathOf(r)))
      .map((r) => r.Properties.RouteKey);
    expect(behindSignIn.map((r) => r.Properties.RouteKey).sort()).toEqual(keyedReads.sort());
    expect(keyedReads).toEqual(
      expect.arrayContaining([
        'GET /v1/devices',
        'GET /v1/devices/{id}/readings',
        'GET /v1/devices/{id}/raw',
      ]),
    );
    expect(behindSignIn.filter((r) => ingestPaths.has(pathOf(r)))).toEqual([]);
    for (const route of behindSignIn) {
      expect(route.Properties).toMatchObject({
        AuthorizationType: 'JWT',
        AuthorizerId: { Ref: expect.any(String) },
      });
    }
    on.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      IdentitySource: ['$request.header.Authorization'],
      JwtConfiguration: { Audience: [{ Ref: Match.stringLikeRegexp('^ConsoleUsersClient') }] },
    });
    // The keys' API stays as it was: every route, ingest and read, without an authorizer.
    for (const { route } of HTTP_FORMATS) {
      expect(keyed.some((r) => String(r.Properties.RouteKey).endsWith(` ${route.path}`))).toBe(true);
    }
    for (const route of keyed) expect(route.Properties.AuthorizationType ?? 'NONE').toBe('NONE');
  });

  it('writes the page settings with the deployment and names the console in the outputs', () => {
    on.hasResourceProperties('Custom::CDKBucketDeployment', {
      Prune: true,
      DistributionPaths: ['/index.html', '/console/*'],
    });
    // The settings asset, as staged for upload: tokens stand as markers CDK fills at deploy.
    const staged = readdirSync(onDir)
      .map((name) => join(onDir, name, CONSOLE_CONFIG_KEY))
      .filter((file) => existsSync(file));
    expect(staged).toHaveLength(1);
    const settings = JSON.parse(readFileSync(staged[0] as string, 'utf8'));
    expect(settings).toEqual({
      apiBase: '',
      auth: {
        kind: 'cognito',
        region: expect.stringMatching(/^<<marker:/),
        userPoolId: expect.stringMatching(/^<<marker:/),
        clientId: expect.stringMatching(/^<<marker:/),
        domain: expect.stringMatching(/^https:\/\/<<marker:.*>>\.auth\.<<marker:.*>>\.amazoncognito\.com$/),
        redirectUri: expect.stringMatching(/^https:\/\/<<marker:.*>>\/$/),
        scopes: ['openid', 'email'],
      },
    });
    expect(JSON.stringify(on.findResources('Custom::CDKBucketDeployment'))).toContain('ConsoleUsersClient');
    const outputs = on.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.ConsoleUrl?.Value).toEqual({
      'Fn::Join': [
        '',
        ['https://', { 'Fn::GetAtt': [expect.stringMatching(/^ConsoleDistribution/), 'DomainName'] }],
      ],
    });
    expect(outputs.UserPoolId?.Value).toEqual({ Ref: expect.stringMatching(/^ConsoleUsers/) });
    expect(outputs.UserPoolClientId?.Value).toEqual({ Ref: expect.stringMatching(/^ConsoleUsersClient/) });
  });

  it('validates console.enabled: true or false, and no other key', () => {
    expect(validateConfig({}).console).toEqual({ enabled: false });
    expect(validateConfig({ console: { enabled: true } }).console).toEqual({ enabled: true });
    expect(() => validateConfig({ console: { enabled: 'yes' } })).toThrow(
      /"console.enabled": got "yes", expected true or false/,
    );
    expect(() => validateConfig({ console: { domain: 'x' } })).toThrow(/console.domain/);
  });

  it.skipIf(skipWithout('cfn-lint'))(
    'passes cfn-lint: no finding but the stack-wide W3005',
    async () => {
      const file = join(dir, 'console-template.json');
      writeFileSync(file, JSON.stringify(on.toJSON()));
      const findings = await cfnLint([file]);
      // W3005 is acknowledged for the whole stack in test/aws/cfn-lint.test.ts.
      expect(findings.filter((f) => f.Rule.Id !== 'W3005').map((f) => `${f.Rule.Id}: ${f.Message}`)).toEqual(
        [],
      );
    },
    120_000,
  );

  it('refuses to synth without a built page, saying how to build it', () => {
    const stack = new Stack(new App(), 'Test');
    const http = { readRoutes: [] } as unknown as HttpApi;
    expect(
      () =>
        new Console(stack, 'Console', {
          stage: 'dev',
          http,
          accessLogs: new s3.Bucket(stack, 'Logs'),
          assetsPath: join(dir, 'missing'),
        }),
    ).toThrow(/no index\.html: build the console first \(npm run console:build\)/);
  });
});
