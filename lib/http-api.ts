/**
 * The public HTTP API (API Gateway HTTP API, payload 2.0) in front of the
 * router Lambda. `GET /`, `GET /v1` and `GET /v1/health` are public; every
 * other `/v1/...` request must carry a JWT the authorizer accepts: from a
 * Cognito user pool this construct creates (groups = projects, plus an admin
 * group), or from an external OIDC issuer.
 */
import { CfnOutput, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpJwtAuthorizer, HttpUserPoolAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { AuthSetting } from './settings.js';

export const PUBLIC_ROUTES = ['/', '/v1', '/v1/health', '/v1/openapi.json'] as const;
export const PROTECTED_ROUTE = '/v1/{proxy+}';
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

    let authorizer: apigwv2.IHttpRouteAuthorizer;
    if (props.auth) {
      authorizer = new HttpJwtAuthorizer('Jwt', props.auth.issuer, { jwtAudience: [...props.auth.audience] });
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
      authorizer = new HttpUserPoolAuthorizer('Cognito', this.userPool, { userPoolClients: [this.userPoolClient] });
      Validations.of(this.userPool).acknowledge({
        id: 'AwsSolutions-COG8',
        reason:
          'Threat protection needs the per-user-billed Plus plan; this pool has no self sign-up (admins create users), requires TOTP MFA and a strong password. Raise the plan when the user base warrants it.',
      });
    }

    this.api = new apigwv2.HttpApi(this, 'Api', {
      description: 'Flare control plane API (v1)',
      createDefaultStage: false,
    });
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

  public get url(): string {
    return this.api.apiEndpoint;
  }
}
