/**
 * The public HTTP API (API Gateway HTTP API, payload 2.0) in front of the
 * router Lambda. `GET /`, `GET /v1` and `GET /v1/health` are public; every
 * other `/v1/...` request must carry a JWT the authorizer accepts: from a
 * Cognito user pool this construct creates (groups = projects, plus an admin
 * group), or from an external OIDC issuer.
 */
import { Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpJwtAuthorizer, HttpUserPoolAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { AuthSetting } from './settings.js';
import type { WebSignIn } from './web-ui.js';

export const PUBLIC_ROUTES = ['/', '/v1', '/v1/health', '/v1/openapi.json'] as const;
export const PROTECTED_ROUTE = '/v1/{proxy+}';
export const UI_PATH = '/ui';
/** The dashboard's routes (lib/web-ui.ts serves them). */
export const UI_ROUTES = [UI_PATH, `${UI_PATH}/{proxy+}`] as const;
/** The default Cognito group whose members are Flare admins; every other group is a project. */
export const ADMIN_GROUP = 'admin';

export interface FlareHttpApiProps {
  readonly handler: lambda.IFunction;
  /** External OIDC issuer and audience. @default a Cognito user pool created here */
  readonly auth?: AuthSetting;
  /**
   * The admin group created in the Cognito user pool (ignored with an
   * external issuer); the API function must be told the same name.
   * @default ADMIN_GROUP ('admin')
   */
  readonly adminGroup?: string;
  /** Steady-state requests per second for the whole stage. @default 50 */
  readonly rateLimit?: number;
  /** @default 100 */
  readonly burstLimit?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

export class FlareHttpApi extends Construct {
  public readonly api: apigwv2.HttpApi;
  public readonly stage: apigwv2.HttpStage;
  public readonly accessLogs: logs.LogGroup;
  /** Created when no external issuer is configured. */
  public readonly userPool?: cognito.UserPool;
  public readonly userPoolClient?: cognito.UserPoolClient;
  public readonly adminGroup: string;
  /** The Cognito client and hosted login domain the dashboard signs in with (no external issuer). */
  public readonly webClient?: cognito.UserPoolClient;
  public readonly loginDomain?: cognito.UserPoolDomain;
  /** How the dashboard signs in with this API's issuer (lib/web-ui.ts). */
  public readonly webSignIn: WebSignIn;

  constructor(scope: Construct, id: string, props: FlareHttpApiProps) {
    super(scope, id);
    const rateLimit = props.rateLimit ?? 50;
    const burstLimit = props.burstLimit ?? 100;
    if (!(rateLimit > 0) || !Number.isInteger(burstLimit) || burstLimit < 1) {
      throw new Error(
        `${this.node.path}: rateLimit must be > 0 and burstLimit a positive integer, got ${rateLimit} / ${burstLimit}`,
      );
    }
    this.adminGroup = props.adminGroup ?? ADMIN_GROUP;
    if (!/^[A-Za-z0-9_.@+=,:-]{1,128}$/.test(this.adminGroup))
      throw new Error(`${this.node.path}: adminGroup must be a Cognito group name, got '${this.adminGroup}'`);

    this.api = new apigwv2.HttpApi(this, 'Api', {
      description: 'Flare control plane API (v1)',
      createDefaultStage: false,
    });
    // The dashboard's sign-in comes back here (authorization code with PKCE).
    const dashboardUrl = `${this.api.apiEndpoint}${UI_PATH}/`;

    let authorizer: apigwv2.IHttpRouteAuthorizer;
    if (props.auth) {
      authorizer = new HttpJwtAuthorizer('Jwt', props.auth.issuer, { jwtAudience: [...props.auth.audience] });
      // The issuer's own client for the dashboard: the first audience, its ID token's `aud`.
      this.webSignIn = { issuer: props.auth.issuer, clientId: props.auth.audience[0]!, scopes: ['openid'] };
    } else {
      this.userPool = new cognito.UserPool(this, 'Users', {
        selfSignUpEnabled: false,
        signInAliases: { username: true, email: true },
        passwordPolicy: {
          minLength: 12,
          requireDigits: true,
          requireLowercase: true,
          requireUppercase: true,
          requireSymbols: true,
        },
        mfa: cognito.Mfa.REQUIRED,
        mfaSecondFactor: { otp: true, sms: false },
        accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      this.userPoolClient = this.userPool.addClient('Cli', {
        authFlows: { userSrp: true },
        generateSecret: false,
        preventUserExistenceErrors: true,
        accessTokenValidity: Duration.hours(1),
        idTokenValidity: Duration.hours(1),
      });
      new cognito.CfnUserPoolGroup(this, 'AdminGroup', {
        userPoolId: this.userPool.userPoolId,
        groupName: this.adminGroup,
        description: 'Flare administrators: every project, pools, quotas and the image catalog',
      });
      // The dashboard's client: the user pool's hosted login, code flow with PKCE, no secret.
      this.webClient = this.userPool.addClient('Web', {
        generateSecret: false,
        // Only the refresh token grant besides the hosted login's code flow: the page renews the hour-long ID
        // token with it (no SRP or custom sign-in through this client). An empty authFlows would leave Cognito's
        // default, which adds those.
        authFlows: { userSrp: false },
        refreshTokenValidity: Duration.hours(12),
        oAuth: {
          flows: { authorizationCodeGrant: true },
          scopes: [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
          callbackUrls: [dashboardUrl],
          logoutUrls: [dashboardUrl],
        },
        supportedIdentityProviders: [cognito.UserPoolClientIdentityProvider.COGNITO],
        preventUserExistenceErrors: true,
        accessTokenValidity: Duration.hours(1),
        idTokenValidity: Duration.hours(1),
      });
      // Hosted login domains are unique per region: the stack's name and the account make it so.
      const prefix = Stack.of(this)
        .stackName.toLowerCase()
        .replace(/[^a-z0-9-]/g, '-')
        .replace(/aws|amazon|cognito/g, 'x')
        .slice(0, 30);
      this.loginDomain = this.userPool.addDomain('Login', {
        cognitoDomain: { domainPrefix: Fn.join('-', [prefix, Aws.ACCOUNT_ID]) },
      });
      this.webSignIn = {
        issuer: this.userPool.userPoolProviderUrl,
        authorizationEndpoint: `${this.loginDomain.baseUrl()}/oauth2/authorize`,
        tokenEndpoint: `${this.loginDomain.baseUrl()}/oauth2/token`,
        logoutEndpoint: `${this.loginDomain.baseUrl()}/logout`,
        clientId: this.webClient.userPoolClientId,
        scopes: ['openid', 'email', 'profile'],
      };
      authorizer = new HttpUserPoolAuthorizer('Cognito', this.userPool, {
        userPoolClients: [this.userPoolClient, this.webClient],
      });
      Validations.of(this.userPool).acknowledge({
        id: 'AwsSolutions-COG8',
        reason:
          'Threat protection needs the per-user-billed Plus plan; this pool has no self sign-up (admins create users), requires TOTP MFA and a strong password. Raise the plan when the user base warrants it.',
      });
    }

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit, burstLimit },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogs),
        format: apigw.AccessLogFormat.custom(
          JSON.stringify({
            requestId: apigw.AccessLogField.contextRequestId(),
            ip: apigw.AccessLogField.contextIdentitySourceIp(),
            requestTime: apigw.AccessLogField.contextRequestTime(),
            method: apigw.AccessLogField.contextHttpMethod(),
            routeKey: '$context.routeKey',
            path: apigw.AccessLogField.contextPath(),
            status: apigw.AccessLogField.contextStatus(),
            responseLength: apigw.AccessLogField.contextResponseLength(),
            latency: apigw.AccessLogField.contextResponseLatency(),
            integrationStatus: apigw.AccessLogField.contextIntegrationStatus(),
            integrationError: '$context.integrationErrorMessage',
            authorizerError: '$context.authorizer.error',
            sub: '$context.authorizer.claims.sub',
          }),
        ),
      },
    });

    const integration = new HttpLambdaIntegration('Router', props.handler, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
    });
    for (const path of PUBLIC_ROUTES) {
      const [route] = this.api.addRoutes({ path, methods: [apigwv2.HttpMethod.GET], integration });
      Validations.of(route).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason: `GET ${path} is public by design (docs/api.md: version discovery, health and the OpenAPI document need no token); it returns no job, project or user data.`,
      });
    }
    this.api.addRoutes({ path: PROTECTED_ROUTE, methods: [apigwv2.HttpMethod.ANY], integration, authorizer });

    new CfnOutput(this, 'Url', { value: this.url, description: 'Flare API base URL (FLARE_API_URL)' });
    if (this.userPool && this.userPoolClient) {
      new CfnOutput(this, 'UserPoolId', { value: this.userPool.userPoolId });
      new CfnOutput(this, 'UserPoolClientId', { value: this.userPoolClient.userPoolClientId });
    }
  }

  /** The dashboard's routes, `GET`/`HEAD` `/ui` and `/ui/{proxy+}`, public: the page holds no data, its API calls carry the token. */
  public addUiRoutes(handler: lambda.IFunction): void {
    const integration = new HttpLambdaIntegration('Ui', handler, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
    });
    for (const path of UI_ROUTES) {
      const routes = this.api.addRoutes({
        path,
        methods: [apigwv2.HttpMethod.GET, apigwv2.HttpMethod.HEAD],
        integration,
      });
      for (const route of routes)
        Validations.of(route).acknowledge({
          id: 'AwsSolutions-APIG4',
          reason: `${path} serves the dashboard's static page and files (docs/dashboard.md), which hold no data; every API call the page makes carries the signed-in token.`,
        });
    }
  }

  public get url(): string {
    return this.api.apiEndpoint;
  }
}
