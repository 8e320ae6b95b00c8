/**
 * Who is calling, read from the claims API Gateway's JWT authorizer verified.
 * The token itself was checked before the Lambda ran; this only interprets it.
 */
import type { APIGatewayProxyEventV2WithJWTAuthorizer } from 'aws-lambda';
import type { Identity } from '../../core/identity.js';
import { NAME_PATTERN } from '../../core/schemas.js';

export const DEFAULT_ADMIN_GROUP = 'admin';
export const DEFAULT_GROUPS_CLAIM = 'cognito:groups';

export interface ClaimsOptions {
  adminGroup?: string;
  groupsClaim?: string;
}

type Claims = APIGatewayProxyEventV2WithJWTAuthorizer['requestContext']['authorizer']['jwt']['claims'];

/** The identity in the event's JWT claims, or undefined when there are none (a public route). */
export function identityFromEvent(
  event: APIGatewayProxyEventV2WithJWTAuthorizer,
  options: ClaimsOptions = {},
): Identity | undefined {
  // Public routes have no authorizer: the context has no `authorizer` at all.
  const claims = (event.requestContext as Partial<APIGatewayProxyEventV2WithJWTAuthorizer['requestContext']>).authorizer
    ?.jwt?.claims;
  return claims ? identityFromClaims(claims, options) : undefined;
}

export function identityFromClaims(claims: Claims, options: ClaimsOptions = {}): Identity | undefined {
  const name = claimString(claims.sub) ?? claimString(claims['cognito:username']);
  if (!name) return undefined;
  const adminGroup = options.adminGroup ?? DEFAULT_ADMIN_GROUP;
  const groups = parseGroups(claims[options.groupsClaim ?? DEFAULT_GROUPS_CLAIM]);
  return {
    name,
    admin: groups.includes(adminGroup),
    // A group that cannot be a project name (e.g. a federated IdP's group) names no project.
    projects: [...new Set(groups.filter((g) => g !== adminGroup && NAME_PATTERN.test(g)))],
  };
}

/**
 * API Gateway hands a JWT array claim to the Lambda either as an array or
 * flattened to a string such as `[vision admin]`; a plain comma list is also seen.
 */
export function parseGroups(claim: unknown): string[] {
  if (Array.isArray(claim)) return claim.filter((g): g is string => typeof g === 'string' && g.length > 0);
  if (typeof claim !== 'string') return [];
  const inner = claim.trim().replace(/^\[/, '').replace(/\]$/, '');
  return inner.split(/[\s,]+/).filter(Boolean);
}

function claimString(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}
