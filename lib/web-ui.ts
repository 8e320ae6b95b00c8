/**
 * The dashboard on AWS: one small function that serves the bundled page and
 * its files under `/ui/` (lambdas/handlers/http/ui.ts, with its strict CSP),
 * on the API's own origin, so the page calls the API with no CORS and no
 * second domain. The bundle (ui/build.ts) is built into the function's package
 * after esbuild. The routes are added by FlareHttpApi.addUiRoutes.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { FlareFunction } from './lambda-defaults.js';

/** How the page signs in: the issuer's login, authorization code with PKCE (FLARE_UI_OIDC). */
export interface WebSignIn {
  readonly issuer: string;
  /** @default from the issuer's discovery document */
  readonly authorizationEndpoint?: string;
  /** @default from the issuer's discovery document */
  readonly tokenEndpoint?: string;
  /** Cognito's `/logout`, so that signing out ends the hosted login's session. @default the discovery document's end_session_endpoint, if any */
  readonly logoutEndpoint?: string;
  /** A public client (no secret) allowed to redirect to `<API URL>/ui/`. */
  readonly clientId: string;
  readonly scopes: readonly string[];
}

export interface FlareWebUiProps {
  /** The UI handler's entry file (lambdas/handlers/http/ui.ts). */
  readonly entry: string;
  /** @default none: the page asks for a token */
  readonly signIn?: WebSignIn;
}

export class FlareWebUi extends Construct {
  public readonly handler: FlareFunction;

  constructor(scope: Construct, id: string, props: FlareWebUiProps) {
    super(scope, id);
    if (props.signIn && props.signIn.scopes.length === 0)
      throw new Error(`${this.node.path}: signIn.scopes must name at least one scope (openid)`);
    this.handler = new FlareFunction(this, 'Handler', {
      entry: props.entry,
      description: 'Flare dashboard: the page and its files under /ui/',
      memorySize: 256,
      timeout: Duration.seconds(10),
      environment: props.signIn ? { FLARE_UI_OIDC: Stack.of(this).toJsonString(props.signIn) } : {},
      // The page's bundle beside the handler, where it reads it from (`ui/` next to index.mjs).
      afterBundling: (inputDir, outputDir) => [`cd "${inputDir}" && node --import tsx ui/build.ts "${outputDir}/ui"`],
    });
  }
}
