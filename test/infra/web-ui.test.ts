/**
 * The dashboard on AWS (lib/web-ui.ts, FlareHttpApi.addUiRoutes): its own
 * function serves /ui and /ui/{proxy+} on the API's origin without the
 * authorizer, its package holds the page's bundle (built after esbuild), and
 * it is told how to sign in: with the created Cognito pool, a public client
 * with the code flow returning to <API URL>/ui/ and a hosted login domain,
 * whose tokens the API's authorizer accepts; with an external issuer, that
 * issuer and its first audience. cdk-nag runs on both synths (synthStack).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import type { App } from 'aws-cdk-lib';
import type { FlareStack } from '../../lib/flare-stack.js';
import { logicalId, removeStandIns, synthStack, type Resources } from '../support/cdk-synth.js';

after(removeStandIns);

/** The UI function's FLARE_UI_OIDC, as CloudFormation will join it (tokens left as their JSON). */
function signInOf(resources: Resources, stack: FlareStack): string {
  const fn = resources[logicalId(stack, stack.webUi.handler.function)]!;
  return JSON.stringify(fn.Properties.Environment.Variables.FLARE_UI_OIDC);
}

describe('the dashboard on AWS, with the Cognito pool the stack creates', () => {
  let app: App;
  let stack: FlareStack;
  let template: Template;
  let resources: Resources;

  before(() => {
    ({ app, stack, template, resources } = synthStack({}, { bundle: true }));
  });

  it('serves GET and HEAD /ui and /ui/{proxy+} from its own function, without the authorizer', () => {
    const integration = Object.entries(resources).find(
      ([, r]) =>
        r.Type === 'AWS::ApiGatewayV2::Integration' &&
        JSON.stringify(r.Properties.IntegrationUri).includes(logicalId(stack, stack.webUi.handler.function)),
    );
    assert.ok(integration, 'an integration with the UI function');
    for (const key of ['GET /ui', 'HEAD /ui', 'GET /ui/{proxy+}', 'HEAD /ui/{proxy+}'])
      template.hasResourceProperties('AWS::ApiGatewayV2::Route', {
        RouteKey: key,
        AuthorizationType: 'NONE',
        AuthorizerId: Match.absent(),
        Target: { 'Fn::Join': ['', ['integrations/', { Ref: integration[0] }]] },
      });
  });

  it("bundles the page into the function's package beside the handler", () => {
    const fn = resources[logicalId(stack, stack.webUi.handler.function)]!;
    const key = fn.Properties.Code.S3Key as string;
    const dir = path.join(app.outdir, `asset.${key.replace(/\.zip$/, '')}`);
    assert.ok(existsSync(path.join(dir, 'index.mjs')), `the handler in ${dir}`);
    assert.ok(existsSync(path.join(dir, 'ui', 'index.html')), 'the page');
    const assets = readdirSync(path.join(dir, 'ui', 'assets'));
    assert.ok(
      assets.some((a) => /^app-\w+\.js$/.test(a)) && assets.some((a) => /^app-\w+\.css$/.test(a)),
      assets.join(', '),
    );
  });

  it("signs in through a public code-flow client of the pool that returns to <API URL>/ui/, accepted by the API's authorizer", () => {
    const web = logicalId(stack, stack.httpApi.webClient!);
    template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      GenerateSecret: false,
      AllowedOAuthFlows: ['code'],
      AllowedOAuthFlowsUserPoolClient: true,
      AllowedOAuthScopes: Match.arrayWith(['openid']),
      CallbackURLs: [
        { 'Fn::Join': ['', [{ 'Fn::GetAtt': [logicalId(stack, stack.httpApi.api), 'ApiEndpoint'] }, '/ui/']] },
      ],
      SupportedIdentityProviders: ['COGNITO'],
      // The page renews its ID token with the refresh token (ui/src/oidc.ts), for a working day at most.
      ExplicitAuthFlows: ['ALLOW_REFRESH_TOKEN_AUTH'],
      RefreshTokenValidity: 720,
      TokenValidityUnits: Match.objectLike({ RefreshToken: 'minutes' }),
    });
    template.hasResourceProperties('AWS::Cognito::UserPoolDomain', {
      Domain: { 'Fn::Join': ['-', ['flarestack', { Ref: 'AWS::AccountId' }]] },
    });
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      JwtConfiguration: { Audience: Match.arrayWith([{ Ref: web }]) },
    });
    const signIn = signInOf(resources, stack);
    assert.ok(signIn.includes(web), `FLARE_UI_OIDC names the web client: ${signIn}`);
    assert.match(signIn, /oauth2\/authorize/);
    assert.match(signIn, /oauth2\/token/);
    assert.match(signIn, /\/logout\\"/, 'sign-out ends the hosted login session (its logout URL is <API URL>/ui/)');
  });

  it('gives the function nothing beyond its logs and traces', () => {
    const role = logicalId(stack, stack.webUi.handler.role);
    const policies = Object.values(resources).filter(
      (r) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties.Roles).includes(role),
    );
    const actions = policies.flatMap((p) =>
      p.Properties.PolicyDocument.Statement.flatMap((s: { Action: string | string[] }) => [s.Action].flat()),
    );
    assert.deepEqual([...new Set(actions)].sort(), [
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
    ]);
  });
});

describe('the dashboard on AWS, with an external OIDC issuer', () => {
  it('signs in with that issuer and its first audience as the client, and creates no Cognito client', () => {
    const { stack, resources } = synthStack({
      'flare:authIssuer': 'https://login.example.org/realms/lab',
      'flare:authAudience': ['flare-dashboard', 'flare-cli'],
    });
    assert.deepEqual(JSON.parse(JSON.parse(signInOf(resources, stack))), {
      issuer: 'https://login.example.org/realms/lab',
      clientId: 'flare-dashboard',
      scopes: ['openid'],
    });
    assert.equal(
      Object.values(resources).filter((r) => r.Type.startsWith('AWS::Cognito::')).length,
      0,
      'no user pool, client or domain',
    );
  });
});
